"""The pool reconciler: run by its schedule every minute and kicked after each claim (both
asynchronous invokes); one reconcile of lablink.pool.reconciler at the current time."""

from datetime import UTC, datetime

from lablink.observability import count, logged, metrics, traced
from lablink.pool.reconciler import Ec2Fleet, reconcile
from lablink.runtime import config, database


@logged()
@traced
@metrics.log_metrics
def handler(event, context):
    cfg = config()
    result = reconcile(database("reconcile"), Ec2Fleet.from_config(cfg), cfg, datetime.now(UTC))
    count("PoolActions", len(result.actions))
    return {"ran": result.ran, "actions": [action.action for action in result.actions]}
