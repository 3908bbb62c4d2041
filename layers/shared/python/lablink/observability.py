"""Powertools Logger, Tracer and Metrics shared by every function (one of each per process).

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the CDK stack); the
metrics namespace from POWERTOOLS_METRICS_NAMESPACE, "LabLink" when unset (local stack).
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "LabLink"

# A request that counted nothing is normal here, not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
# No auto-patching: it imports every library X-Ray can patch on a cold start. The
# functions that call AWS patch botocore themselves (provisioning.aws_client).
tracer = Tracer(auto_patch=False)
metrics = Metrics(namespace=NAMESPACE)


def count(name: str, value: int = 1) -> None:
    """Add a business metric (EMF, flushed by the handler's log_metrics)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
