"""The admin function: the admin routes of lablink.routes, served by lablink.api.admin."""

from aws_lambda_powertools.logging import correlation_paths

from lablink.api.admin import app
from lablink.api.http import resolve
from lablink.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return resolve(app, event, context)
