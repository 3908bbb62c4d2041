"""The request function: the request routes of lablink.routes, served by lablink.api.request."""

from aws_lambda_powertools.logging import correlation_paths

from lablink.api.http import resolve
from lablink.api.request import app
from lablink.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return resolve(app, event, context)
