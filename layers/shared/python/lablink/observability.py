"""Powertools Logger, Tracer and Metrics shared by every function (one of each per process).

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the CDK stack); the
metrics namespace from POWERTOOLS_METRICS_NAMESPACE, "LabLink" when unset (local stack).
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider

from lablink import environment

NAMESPACE = os.environ.get(environment.METRICS_NAMESPACE) or "LabLink"

# A request that counted nothing is normal here, not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()


class _XRayOnFirstUse(BaseProvider):
    """The X-Ray recorder, imported when tracing is first used rather than at import: the
    SDK pulls in botocore (~100 ms), which only the functions that call AWS need at start.
    With tracing on, a function's first invocation pays that cost instead of its import;
    with tracing off (POWERTOOLS_TRACE_DISABLED, the local stack, the tests) nobody does.
    Each method is one Powertools calls, handed to the recorder (the SDK is untyped)."""

    _recorder = None

    def _load(self):
        if _XRayOnFirstUse._recorder is None:
            import aws_xray_sdk.core as xray

            recorder = xray.xray_recorder
            recorder.patch = xray.patch
            recorder.patch_all = xray.patch_all
            recorder.configure(streaming_threshold=0)  # what Powertools sets for its own recorder
            _XRayOnFirstUse._recorder = recorder
        return _XRayOnFirstUse._recorder

    def in_subsegment(self, name=None, **kwargs):
        return self._load().in_subsegment(name=name, **kwargs)

    def in_subsegment_async(self, name=None, **kwargs):
        return self._load().in_subsegment_async(name=name, **kwargs)

    def put_annotation(self, key, value):
        self._load().put_annotation(key, value)

    def put_metadata(self, key, value, namespace="default"):
        self._load().put_metadata(key, value, namespace)

    def patch(self, modules):
        self._load().patch(modules)

    def patch_all(self):
        self._load().patch_all()


# No auto-patching: it imports every library X-Ray can patch. The functions that call AWS
# patch botocore themselves (lablink.fleet.ec2.aws_client).
tracer = Tracer(auto_patch=False, provider=_XRayOnFirstUse())
metrics = Metrics(namespace=NAMESPACE)


def traced(handler):
    """The handler in an X-Ray subsegment, without its response or its error as metadata:
    either may hold a PIN, a claim token, a VM token, a CRD code or a password, and trace
    metadata is readable by anyone allowed to read traces. Set here, in the code, rather than
    by POWERTOOLS_TRACER_CAPTURE_* in the stack: an explicit choice wins over those variables,
    so no environment (the console, the local stack) can turn capture back on."""
    return tracer.capture_lambda_handler(handler, capture_response=False, capture_error=False)


def logged(correlation_id_path: str | None = None):
    """Logger context for a handler; never the event (it holds the request's body and its
    Authorization header), whatever POWERTOOLS_LOGGER_LOG_EVENT says."""
    return logger.inject_lambda_context(correlation_id_path=correlation_id_path, log_event=False)


def count(name: str, value: int = 1) -> None:
    """Add a business metric (EMF, flushed by the handler's log_metrics)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
