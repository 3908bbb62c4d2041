"""CloudWatch Logs subscription -> the VM log tables (see lablink.logs)."""

from lablink.logs import MalformedBatch, ingest
from lablink.observability import count, logged, logger, metrics, traced
from lablink.runtime import config, database


@logged()
@traced
@metrics.log_metrics
def handler(event, context):
    # DatabaseUnreachable is not caught: the invocation fails, Lambda retries it and then
    # hands the batch to the dead-letter queue (stacks/logs.py), so an outage drops nothing.
    try:
        result = ingest(database("log-processor"), event, config().logs)
    except MalformedBatch as error:
        # Redelivery cannot fix a payload that does not decode: report it and drop it.
        logger.error("malformed log subscription payload", extra={"reason": str(error)})
        count("LogBatchesRejected")
        return {"status": "rejected", "error": str(error)}
    count("LogEventsIngested", result["stored"])
    if result["dropped"]:
        count("LogEventsOverCap", result["dropped"])
        logger.warning("log events over the VM's ingest cap counted, not stored", extra=result)
    if result["vm_known"] is False:
        count("LogEventsOfUnknownStreams", result["stored"])
        logger.warning("log events of a stream with no VM kept aside", extra=result)
    else:
        logger.info("log batch stored", extra=result)
    return {"status": "ok", **result}
