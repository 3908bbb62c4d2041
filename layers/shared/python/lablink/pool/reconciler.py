"""The reconciler: compares the pool policy with the VM rows and the deployment's instances,
and acts. One run at a time (a transaction advisory lock: a second run at the same moment
returns at once, doing nothing, since the first one is already doing the same work), and
idempotent: launches in flight count as VMs to come, a VM being destroyed is left alone,
a reboot waits out its cooldown. Every action is logged with its reason.

    result = reconcile(db, Ec2Fleet.from_config(cfg), cfg, datetime.now(timezone.utc))

Launches and destroys go through the provisioning step, as the admin's do (an operation, then
lablink.fleet.dispatch.start_async); reboots and the termination of orphans are single EC2
calls made here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from lablink.config import LablinkConfig
from lablink.db.connection import Row
from lablink.db.database import Database
from lablink.db.errors import FleetFull
from lablink.db.pool import PoolAction
from lablink.fleet import dispatch
from lablink.fleet import ec2 as fleet_ec2
from lablink.models import GpuHealth, VmStatus
from lablink.observability import logger
from lablink.pool.policy import PoolPolicy, get_policy, target_free

# LabLink's own rule for a broken VM: reboot it up to 3 times, 300 s apart, then replace it.
MAX_REBOOTS = 3
REBOOT_COOLDOWN_S = 300
# An operation whose step recorded no progress for this long is dead: no provisioning function
# runs longer (Lambda's maximum timeout is 900 s), so nothing will ever finish it.
OPERATION_STALL_S = 900


class Fleet(Protocol):
    """The EC2 side the reconciler needs (Ec2Fleet; moto in the tests)."""

    def instances(self) -> dict[str, str]:
        """hostname -> instance id of the deployment's live instances."""
        ...

    def reboot(self, instance_ids: list[str]) -> None: ...

    def terminate(self, instance_ids: list[str]) -> None: ...


class Ec2Fleet:
    def __init__(self, ec2, environment: str) -> None:
        self._ec2 = ec2
        self._environment = environment

    @classmethod
    def from_config(cls, cfg: LablinkConfig) -> Ec2Fleet:
        return cls(fleet_ec2.aws_client("ec2", cfg.app.region), cfg.app.environment)

    def instances(self) -> dict[str, str]:
        return fleet_ec2.live_instances(self._ec2, self._environment)

    def reboot(self, instance_ids: list[str]) -> None:
        fleet_ec2.reboot(self._ec2, instance_ids)

    def terminate(self, instance_ids: list[str]) -> None:
        fleet_ec2.terminate(self._ec2, instance_ids)


@dataclass
class ReconcileResult:
    ran: bool  # False: another reconcile held the lock, this one did nothing
    actions: list[PoolAction] = field(default_factory=list)


@dataclass
class _Run:
    db: Database
    fleet: Fleet
    cfg: LablinkConfig
    policy: PoolPolicy
    now: datetime
    actions: list[PoolAction] = field(default_factory=list)
    # hostname -> release reason ("" for a VM with no researcher) of the VMs to destroy
    doomed: dict[str, str] = field(default_factory=dict)

    def log(self, action: str, hostname: str | None, reason: str, operation_id: str | None = None) -> None:
        self.actions.append(PoolAction(self.now, action, hostname, reason, operation_id))

    def ago(self, seconds: int) -> datetime:
        return self.now - timedelta(seconds=seconds)


def reconcile(db: Database, fleet: Fleet, cfg: LablinkConfig, now: datetime) -> ReconcileResult:
    """One reconcile at ``now`` (a parameter: the tests move the clock)."""
    ran, actions = db.pool.run_exclusive(lambda: _reconcile(_Run(db, fleet, cfg, get_policy(db, cfg), now)))
    return ReconcileResult(ran, actions or [])


def _reconcile(run: _Run) -> list[PoolAction]:
    dead_destroys = _abandon_dead_operations(run)
    # Instances before rows: the step writes a VM's row before it starts the instance, so every
    # instance described here has its row in the rows read next, unless it was destroyed.
    instances = run.fleet.instances()
    vms = run.db.pool.list_vms()
    _settle_instances(run, instances, vms)
    # The VMs of a destroy that died are destroyed again.
    run.doomed.update((vm["hostname"], "") for vm in vms if vm["hostname"] in dead_destroys and not vm["destroying"])
    closes_at = run.policy.closes_at
    if closes_at is not None and run.now >= closes_at and not run.policy.paused:
        _close(run, vms, closes_at)
    else:
        if not run.policy.paused:
            live = [vm for vm in vms if not vm["destroying"]]
            _recycle(run, live)
            _repair(run, live, instances)
        _destroy(run, all_vms=False)
        if not run.policy.paused:
            _refill(run, vms)
    run.db.pool.append_actions(run.actions)
    run.db.pool.record_reconcile(run.now)
    if run.actions:
        logger.info("pool reconciled", extra={"actions": len(run.actions)})
    return run.actions


def _abandon_dead_operations(run: _Run) -> set[str]:
    """Fail the operations whose step died; the hostnames of the dead destroys."""
    reason = f"no progress for {OPERATION_STALL_S} s: its step died"
    dead_destroys: set[str] = set()
    for op in run.db.operations.abandon_stalled_operations(run.ago(OPERATION_STALL_S), reason):
        if op["kind"] == "launch":
            outcome = f"its hostnames {', '.join(op['hostnames'])} are free again"
        else:
            dead_destroys.update(op["hostnames"])
            outcome = "its VMs are destroyed again"
        run.log("release", None, f"{op['kind']} {reason}; {outcome}", op["operation_id"])
    return dead_destroys


def _settle_instances(run: _Run, instances: dict[str, str], vms: list[Row]) -> None:
    """Every live instance ends with a row: one whose row lacks its id (a step stopped between
    starting it and recording it) is recorded there; one with no row, or a second one for a
    row that has another, is terminated."""
    rows = {vm["hostname"]: vm for vm in vms}
    orphans = []
    for hostname, instance_id in sorted(instances.items()):
        vm = rows.get(hostname)
        if vm is not None and vm["instance_id"] is None:
            run.db.vms.set_instance(hostname, instance_id)
            vm["instance_id"] = instance_id
            run.log("adopt", hostname, f"instance {instance_id} was started but never recorded on its row")
        elif vm is None or vm["instance_id"] != instance_id:
            orphans.append(instance_id)
            run.log(
                "terminate", hostname, f"instance {instance_id} is tagged for this deployment but no VM row holds it"
            )
    if orphans:
        run.fleet.terminate(orphans)


def _close(run: _Run, vms: list[Row], closes_at: datetime) -> None:
    for vm in vms:
        run.doomed[vm["hostname"]] = "closed" if vm["assigned"] else ""
    _destroy(run, all_vms=True)
    run.db.pool.set_policy(run.policy.model_copy(update={"paused": True}).model_dump())
    run.log("close", None, f"the workshop closed at {closes_at.isoformat()}: every VM destroyed, pool paused")


def _recycle(run: _Run, vms: Iterable[Row]) -> None:
    """Assigned VMs held too long, or not in use too long, are destroyed (refill replaces them)."""
    policy = run.policy
    for vm in vms:
        if not vm["assigned"]:
            continue
        if policy.max_session_s and vm["assigned_at"] and vm["assigned_at"] <= run.ago(policy.max_session_s):
            reason, why = "max_session", f"assigned for more than {policy.max_session_s} s"
        elif (
            policy.idle_timeout_s
            and not vm["inuse"]
            and vm["idle_since"]
            and vm["idle_since"] <= run.ago(policy.idle_timeout_s)
        ):
            reason, why = "idle", f"not in use for more than {policy.idle_timeout_s} s"
        else:
            continue
        run.doomed[vm["hostname"]] = reason
        run.log("recycle", vm["hostname"], f"{reason}: {why}")


def _trouble(run: _Run, vm: Row) -> str | None:
    """Why a VM needs repair, or None."""
    limit = run.policy.unhealthy_after_s
    if vm["status"] == VmStatus.ERROR:
        # On an assigned VM, 'error' is the agent's: start-host failed, most often for a mistyped
        # or expired code, which the researcher mends by asking again (same VM, new command).
        return None if vm["assigned"] else "its launch failed"
    if vm["healthy"] == GpuHealth.UNHEALTHY:
        return "its GPU reports unhealthy"
    if vm["status"] in (None, VmStatus.INITIALIZING):
        return f"still booting after {limit} s" if vm["created_at"] <= run.ago(limit) else None
    return f"silent for more than {limit} s" if vm["last_seen_at"] <= run.ago(limit) else None


def _repair(run: _Run, vms: Iterable[Row], instances: dict[str, str]) -> None:
    """Reboot a broken VM, at most MAX_REBOOTS times REBOOT_COOLDOWN_S apart; replace it when
    that did not help, or when there is nothing to reboot."""
    reboot: dict[str, str] = {}
    for vm in vms:
        hostname = vm["hostname"]
        trouble = None if hostname in run.doomed else _trouble(run, vm)
        if trouble is None:
            continue
        if vm["last_reboot_at"] is not None and vm["last_reboot_at"] > run.ago(REBOOT_COOLDOWN_S):
            continue  # a reboot is under way: give it its time
        # Only a VM whose recorded instance is still live can be rebooted.
        rebootable = (
            vm["status"] != VmStatus.ERROR
            and vm["instance_id"] is not None
            and instances.get(hostname) == vm["instance_id"]
        )
        if rebootable and vm["reboots"] < MAX_REBOOTS:
            reboot[hostname] = vm["instance_id"]
            run.log("reboot", hostname, f"{trouble} (reboot {vm['reboots'] + 1} of {MAX_REBOOTS})")
        else:
            run.doomed[hostname] = "unhealthy" if vm["assigned"] else ""
            done = f"after {vm['reboots']} reboots" if rebootable else "with no instance to reboot"
            run.log("replace", hostname, f"{trouble}, {done}")
    if reboot:
        run.fleet.reboot(sorted(reboot.values()))


def _destroy(run: _Run, *, all_vms: bool) -> None:
    """Release the doomed VMs' researchers (the history keeps each reason), then destroy them
    in one operation; ``all_vms`` also terminates every instance of the deployment."""
    if not run.doomed and not all_vms:
        return
    by_reason: dict[str, list[str]] = defaultdict(list)
    for hostname, reason in run.doomed.items():
        if reason:
            by_reason[reason].append(hostname)
    for reason, hostnames in by_reason.items():
        run.db.pool.release(hostnames, reason)
    hostnames = sorted(run.doomed)
    operation_id = str(run.db.operations.create("destroy", hostnames))
    _start(run, {"kind": "destroy", "operation_id": operation_id, "hostnames": hostnames, "all": all_vms})


def _refill(run: _Run, vms: list[Row]) -> None:
    """Launch what keeps min_free VMs free, counting those booting and those being launched,
    within max_vms (the smaller of the policy's and the fleet's)."""
    target = target_free(run.policy, run.now)
    rows = {vm["hostname"] for vm in vms}
    launching = len(set(run.db.pool.list_launching_hostnames()) - rows)
    coming = [vm for vm in vms if not vm["destroying"] and vm["hostname"] not in run.doomed]
    free = sum(1 for vm in coming if vm["free"])
    booting = sum(1 for vm in coming if vm["status"] in (None, VmStatus.INITIALIZING))
    max_vms = min(run.policy.max_vms, run.cfg.fleet.max_vms)
    count = min(
        target - free - booting - launching, max_vms - len(rows) - launching, run.cfg.fleet.max_launch_per_request
    )
    if count <= 0:
        return
    try:
        operation_id, hostnames = run.db.operations.reserve_launch(run.cfg.app.environment, count, max_vms)
    except FleetFull:
        return  # a launch of someone else's took the room meanwhile: the next run sees it
    run.log(
        "launch",
        None,
        f"{free} free + {booting} booting + {launching} launching < {target} wanted: launching {count}",
        str(operation_id),
    )
    _start(run, {"kind": "launch", "operation_id": str(operation_id), "hostnames": hostnames})


def _start(run: _Run, payload: dict) -> None:
    """Start the provisioning step; when it cannot start, the operation is marked failed (a
    launch's hostnames are free again) and the next run tries again."""
    try:
        dispatch.start_async(payload)
    except Exception as error:
        logger.exception("could not start the provisioning step", extra={"operation_id": payload["operation_id"]})
        run.db.operations.record_progress(
            payload["operation_id"],
            failed=len(payload["hostnames"]),
            error=f"could not start provisioning: {error}"[:1000],
        )
