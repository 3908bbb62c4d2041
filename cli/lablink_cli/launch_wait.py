"""`lablink launch N --wait`: follows the launched VMs until each is ready or failed.

A launch's operation ends once EC2 has accepted every instance; a VM is ready only when its
agent reports running, minutes later on AWS (image, cloud-init, the container). So each VM is
read from the operation and GET /api/vms: requested (no row or no instance yet), booting (an
instance, not yet running), ready (running or assigned), failed (with the reason: the
operation's error for it, e.g. an EC2 quota, or its own error report)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lablink_cli.client import FINISHED, AdminClient

READY = ("running", "available", "assigned")
# The operation's error names the VM it is about ("lablink-vm-dev-3: ...") unless the whole
# launch failed ("could not start provisioning: ...").
_ABOUT_ONE_VM = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}: ")


@dataclass
class LaunchState:
    operation_id: str
    requested: list[str] = field(default_factory=list)
    booting: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # hostname -> reason

    @property
    def total(self) -> int:
        return len(self.requested) + len(self.booting) + len(self.ready) + len(self.failed)

    @property
    def finished(self) -> bool:
        return not self.requested and not self.booting

    def progress(self) -> str:
        return (
            f"launch: {len(self.ready)} of {self.total} ready "
            f"({len(self.requested)} requested, {len(self.booting)} booting, {len(self.failed)} failed)"
        )

    def as_json(self, timed_out: bool) -> dict:
        return {
            "operation_id": self.operation_id,
            "ready": self.ready,
            "booting": self.booting,
            "requested": self.requested,
            "failed": self.failed,
            "timed_out": timed_out,
        }


def _failure(hostname: str, operation: Mapping, fallback: str) -> str:
    error = operation.get("error") or ""
    if error.startswith(f"{hostname}: "):
        return error[len(hostname) + 2 :]
    if error and not _ABOUT_ONE_VM.match(error):
        return error  # the whole launch failed, this VM with it
    if error:
        return f"{fallback} (the launch's last error: {error})"
    return fallback


def launch_state(operation: Mapping, vms: Mapping[str, Mapping]) -> LaunchState:
    """Where each VM of a launch operation stands, from the operation and the VM rows."""
    state = LaunchState(operation["operation_id"])
    ended = operation["status"] in FINISHED
    for hostname in operation["hostnames"]:
        vm = vms.get(hostname)  # the launch step creates the row just before the instance
        if vm is None and not ended:
            state.requested.append(hostname)
        elif vm is None:
            state.failed[hostname] = _failure(hostname, operation, "it no longer exists (destroyed)")
        elif vm.get("status") in READY:
            state.ready.append(hostname)
        elif vm.get("status") == "error":
            state.failed[hostname] = _failure(
                hostname, operation, f"it reported an error (see `lablink logs {hostname}`)"
            )
        elif vm.get("instance_id"):
            state.booting.append(hostname)
        elif ended:
            state.failed[hostname] = _failure(
                hostname, operation, f"the launch ended ({operation['status']}) without starting it"
            )
        else:
            state.requested.append(hostname)
    return state


def wait_for_launch(
    client: AdminClient, operation_id: str, show: Callable[[LaunchState], None], timeout: float, poll: float
) -> tuple[LaunchState, bool]:
    """(the last state, whether the timeout ended the wait)."""
    deadline = time.monotonic() + timeout
    while True:
        vms = {vm["hostname"]: vm for vm in client.vms()}
        state = launch_state(client.operation(operation_id), vms)
        show(state)
        if state.finished:
            return state, False
        if time.monotonic() >= deadline:
            return state, True
        time.sleep(poll)
