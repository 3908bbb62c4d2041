"""The provisioning step (launch or destroy one operation's VMs on EC2), invoked
asynchronously by the launch function through lablink.provisioning.start_async."""

from lablink import provisioning
from lablink.observability import logger, tracer
from lablink.runtime import config, database


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event, context):
    logger.append_keys(operation_id=event.get("operation_id"))
    return provisioning.run_step(event, database("provision"), config())
