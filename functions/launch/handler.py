"""The launch function: the launch routes of lablink.routes, served by lablink.api.launch."""

from aws_lambda_powertools.logging import correlation_paths

from lablink.api.http import resolve
from lablink.api.launch import app
from lablink.observability import logged, metrics, traced


@logged(correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event, context):
    return resolve(app, event, context)
