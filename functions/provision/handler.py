"""The provisioning step (launch or destroy one operation's VMs on EC2), invoked
asynchronously by the launch function through lablink.fleet.dispatch.start_async."""

from lablink.fleet import steps
from lablink.observability import logged, logger, traced
from lablink.runtime import config, database


@logged()
@traced
def handler(event, context):
    logger.append_keys(operation_id=event.get("operation_id"))
    return steps.run_step(event, database("provision"), config())
