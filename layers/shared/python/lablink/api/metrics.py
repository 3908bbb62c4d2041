"""VM telemetry routes (bearer token of the VM, checked by the authorizer). A VM may only
report about itself: the hostname the authorizer found for its token must be the one named."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from lablink.api.http import ApiError, make_resolver
from lablink.api.models import GpuHealthReport, InUseReport, Message, VmMetricsReport, VmStatusReport
from lablink.db.errors import UnknownVm
from lablink.models import HOSTNAME_PATTERN, VM_REPORTABLE_STATUSES, GpuHealth
from lablink.runtime import database

app = make_resolver()


def own_hostname(named: str) -> str:
    """``named`` when the caller's token belongs to it; 403 otherwise."""
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    if authorizer.get("hostname") != named:
        raise ApiError(403, "This token belongs to another VM.")
    return named


def _unknown(hostname: str) -> ApiError:
    return ApiError(404, f"No VM is named {hostname}.")


@app.post("/api/vm-status", summary="A VM reports its status (initializing, running, error, unknown)")
def report_status(body: VmStatusReport) -> Message:
    hostname = own_hostname(body.hostname)
    if body.status not in VM_REPORTABLE_STATUSES:
        allowed = ", ".join(sorted(VM_REPORTABLE_STATUSES))
        raise ApiError(400, f"Unknown status {body.status!r}; a VM may report {allowed}.")
    if not database("metrics").vms.set_status(hostname, body.status):
        raise _unknown(hostname)
    return Message(message=f"Status of {hostname} set to {body.status}.")


LAST_SECOND = 253_402_300_800  # 10000-01-01T00:00:00Z in Unix epoch seconds


@app.post("/api/vm-metrics/<hostname>", summary="A VM reports startup timings (Unix epoch seconds)")
def report_metrics(
    hostname: Annotated[str, Path(pattern=HOSTNAME_PATTERN)],
    body: VmMetricsReport,
) -> Message:
    hostname = own_hostname(hostname)
    values = body.model_dump(exclude_none=True)
    if not values:
        raise ApiError(400, "Give at least one metric (cloud_init_* or container_*).")
    if any(value < 0 for value in values.values()):
        raise ApiError(400, "Times and durations cannot be negative.")
    if any(value >= LAST_SECOND for value in values.values()):
        # PostgreSQL cannot store such a time: it was a 500 (found by fuzzing).
        raise ApiError(400, "Times must be Unix epoch seconds before the year 10000.")
    try:
        total = database("metrics").startup.record(hostname, values)
    except UnknownVm:
        raise _unknown(hostname) from None
    if total is None:
        return Message(message=f"Metrics of {hostname} stored.")
    return Message(message=f"Metrics of {hostname} stored; total startup {total:.1f} s.")


@app.post("/api/gpu_health", summary="A VM reports its GPU health (Healthy, Unhealthy, N/A)")
def report_gpu_health(body: GpuHealthReport) -> Message:
    hostname = own_hostname(body.hostname)
    if body.gpu_status not in {h.value for h in GpuHealth}:
        raise ApiError(400, f"Unknown GPU status {body.gpu_status!r}; expected Healthy, Unhealthy or N/A.")
    if not database("metrics").vms.set_health(hostname, body.gpu_status):
        raise _unknown(hostname)
    return Message(message=f"GPU health of {hostname} set to {body.gpu_status}.")


@app.post("/api/update_inuse_status", summary="A VM reports whether the subject software is running")
def report_in_use(body: InUseReport) -> Message:
    hostname = own_hostname(body.hostname)
    if not database("metrics").vms.set_in_use(hostname, body.status):
        raise _unknown(hostname)
    return Message(message=f"In-use of {hostname} set to {str(body.status).lower()}.")
