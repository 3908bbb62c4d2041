"""The provisioning step (launch or destroy one operation's VMs on EC2), invoked
asynchronously by the launch function through lablink.fleet.dispatch.start_async."""

from lablink.fleet import steps
from lablink.observability import logger, tracer
from lablink.runtime import config, database


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event, context):
    logger.append_keys(operation_id=event.get("operation_id"))
    return steps.run_step(event, database("provision"), config())
