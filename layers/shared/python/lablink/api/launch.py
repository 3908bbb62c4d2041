"""Fleet routes (admin): launch, destroy, and recycle or reboot one VM answer 202 at once with
an operation; the EC2 work runs in the provisioning step (lablink.fleet.steps), started through lablink.fleet.dispatch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from lablink.api.http import ApiError, HostnamePath, make_resolver
from lablink.api.models import DestroyRequest, LaunchRequest, OperationAccepted, OperationOut, RecycleAccepted
from lablink.db.errors import FleetFull, UnknownVm
from lablink.fleet import dispatch
from lablink.observability import logger
from lablink.pool import vm_actions
from lablink.runtime import config, database

app = make_resolver()


def _accepted(operation_id: str, hostnames: list[str]) -> Response[OperationAccepted]:
    body = OperationAccepted(operation_id=operation_id, hostnames=hostnames)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


def _start(payload: dict) -> None:
    """Hand the operation to the provisioning step; when that cannot even start, the
    operation is marked failed and the caller gets a 502 (nothing was launched)."""
    try:
        dispatch.start_async(payload)
    except Exception as error:
        logger.exception("could not start the provisioning step")
        database("launch").operations.record_progress(
            payload["operation_id"], failed=len(payload["hostnames"]), error=f"could not start provisioning: {error}"
        )
        raise ApiError(502, "The provisioning step could not be started; nothing was changed.") from None


@app.post(
    "/api/launch",
    summary="Launch num_vms client VMs (asynchronous: 202 with the operation and the new hostnames)",
    responses={202: {"description": "Accepted: provisioning continues in the background"}},
)
def launch(body: Annotated[LaunchRequest, Body()]) -> Response[OperationAccepted]:
    cfg = config()
    if body.num_vms > cfg.fleet.max_launch_per_request:
        raise ApiError(422, f"num_vms may be at most {cfg.fleet.max_launch_per_request} per launch.")
    try:
        operation_id, hostnames = database("launch").operations.reserve_launch(cfg.app.environment, body.num_vms, cfg.fleet.max_vms)
    except FleetFull as error:
        raise ApiError(409, str(error)) from None
    _start({"kind": "launch", "operation_id": str(operation_id), "hostnames": hostnames})
    return _accepted(str(operation_id), hostnames)


@app.post(
    "/api/destroy",
    summary="Destroy every VM, or the named ones (asynchronous: 202 with the operation)",
    responses={
        202: {"description": "Accepted: instances are terminated, rows marked then removed"},
        404: {"description": "Some named hostnames are unknown (named in the error); nothing is destroyed"},
    },
)
def destroy(body: Annotated[DestroyRequest, Body()]) -> Response[OperationAccepted]:
    """Destroying everything also covers the VMs that launches in flight are still creating:
    the step itself takes what exists when it runs (lablink.fleet.steps.destroy_vms)."""
    db = database("launch")
    if body.hostnames is None:
        hostnames = db.vms.list_hostnames()
    else:
        hostnames = list(dict.fromkeys(body.hostnames))
        known = db.vms.get_instance_ids(hostnames)
        unknown = [hostname for hostname in hostnames if hostname not in known]
        if unknown:
            raise ApiError(404, f"No VM has the hostname {', '.join(unknown)}; nothing was destroyed.")
    operation_id = db.operations.create("destroy", hostnames)
    _start({"kind": "destroy", "operation_id": str(operation_id), "hostnames": hostnames, "all": body.hostnames is None})
    return _accepted(str(operation_id), hostnames)


@app.post(
    "/api/vms/<hostname>/recycle",
    summary="Recycle one VM: it is terminated, its researcher's email is free again, a fresh VM takes its place",
    responses={
        202: {"description": "Accepted: the destroy, and the launch of its replacement"},
        409: {"description": "The VM is already being destroyed"},
    },
)
def recycle(hostname: HostnamePath) -> Response[RecycleAccepted]:
    try:
        planned = vm_actions.recycle(database("launch"), config(), hostname, datetime.now(UTC))
    except UnknownVm:
        raise ApiError(404, f"No VM is named {hostname}.") from None
    except vm_actions.BeingDestroyed:
        raise ApiError(409, f"{hostname} is already being destroyed.") from None
    try:
        _start(planned.destroy)
    except ApiError:
        if planned.launch is not None:  # its hostname would stay reserved until the reconciler frees it
            database("launch").operations.record_progress(
                planned.launch["operation_id"], failed=1, error="the destroy it replaces could not be started"
            )
        message = f"The provisioning step could not be started: {hostname} is released but not destroyed; recycle it again."
        raise ApiError(502, message) from None
    if planned.launch is not None:
        _start(planned.launch)
    body = RecycleAccepted(
        operation_id=planned.destroy["operation_id"],
        hostnames=[hostname],
        replacement_operation_id=planned.launch["operation_id"] if planned.launch else None,
        replacement_hostnames=planned.launch["hostnames"] if planned.launch else [],
    )
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


@app.post(
    "/api/vms/<hostname>/reboot",
    summary="Reboot one VM's instance (EC2 RebootInstances); it keeps its assignment",
    responses={
        202: {"description": "Accepted: the reboot operation"},
        409: {"description": "The VM has no instance yet"},
    },
)
def reboot(hostname: HostnamePath) -> Response[OperationAccepted]:
    try:
        payload = vm_actions.reboot(database("launch"), hostname, datetime.now(UTC))
    except UnknownVm:
        raise ApiError(404, f"No VM is named {hostname}.") from None
    except vm_actions.NoInstanceYet:
        raise ApiError(409, f"{hostname} has no instance yet; there is nothing to reboot.") from None
    _start(payload)
    return _accepted(payload["operation_id"], [hostname])


@app.get("/api/operations/<operation_id>", summary="Progress of a launch or destroy operation")
def operation(operation_id: Annotated[str, Path(max_length=64)]) -> OperationOut:
    found = database("launch").operations.get(operation_id)
    if found is None:
        raise ApiError(404, f"No operation has the id {operation_id}.")
    return OperationOut.model_validate({key: value for key, value in found.items() if key in OperationOut.model_fields})
