"""The admin function: the admin routes of lablink.routes, served by lablink.api.admin."""

from aws_lambda_powertools.logging import correlation_paths

from lablink.api.admin import app
from lablink.api.http import resolve
from lablink.observability import logged, metrics, traced


@logged(correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event, context):
    return resolve(app, event, context)
