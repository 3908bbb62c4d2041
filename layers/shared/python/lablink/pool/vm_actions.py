"""An admin's actions on one VM (POST /api/vms/{hostname}/recycle and /reboot): each becomes
operations for the provisioning step, which makes the EC2 calls, and an entry in the pool's
action log. The caller starts the returned steps (lablink.fleet.dispatch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.db.errors import FleetFull, UnknownVm
from lablink.db.pool import PoolAction
from lablink.pool.policy import get_policy

BY_ADMIN = "requested by an admin"


class NoInstanceYet(Exception):
    """The VM's instance has not been started yet: there is nothing to reboot."""


class BeingDestroyed(Exception):
    """A destroy of the VM is under way (a second recycle would launch a second replacement)."""


@dataclass(frozen=True)
class Recycle:
    destroy: dict  # the step payload that terminates the VM
    launch: dict | None  # the step payload of its replacement; None when the fleet has no room


def recycle(db: Database, cfg: LablinkConfig, hostname: str, now: datetime) -> Recycle:
    """Free the VM's researcher (the history says 'recycled'), then plan its destroy and the
    launch of a fresh VM in its place. Raises UnknownVm, BeingDestroyed."""
    if not db.vms.exists(hostname):
        raise UnknownVm(hostname)
    destroy = db.operations.create_sole_destroy(hostname)
    if destroy is None:
        raise BeingDestroyed(hostname)
    destroy_id = str(destroy)
    db.pool.release([hostname], "recycled")
    # The replacement takes the place of a VM on its way out: one more than the maximum counts it.
    room = min(get_policy(db, cfg).max_vms, cfg.fleet.max_vms) + 1
    try:
        launch_id, fresh = db.operations.reserve_launch(cfg.app.environment, 1, room)
        launch: dict | None = {"kind": "launch", "operation_id": str(launch_id), "hostnames": fresh}
        outcome = f"replaced by {fresh[0]}"
    except FleetFull:
        launch, outcome = None, "no room in the fleet for a replacement"
    db.pool.append_actions([PoolAction(now, "recycle", hostname, f"{BY_ADMIN}; {outcome}", destroy_id)])
    return Recycle({"kind": "destroy", "operation_id": destroy_id, "hostnames": [hostname], "all": False}, launch)


def reboot(db: Database, hostname: str, now: datetime) -> dict:
    """Plan an EC2 reboot of the VM's instance; the VM keeps its assignment. Logged as the
    reconciler's reboots are, so the reconciler gives it the same cooldown before judging the
    VM again. Raises UnknownVm, NoInstanceYet."""
    instance_ids = db.vms.get_instance_ids([hostname])
    if hostname not in instance_ids:
        raise UnknownVm(hostname)
    if instance_ids[hostname] is None:
        raise NoInstanceYet(hostname)
    operation_id = str(db.operations.create("reboot", [hostname]))
    db.pool.append_actions([PoolAction(now, "reboot", hostname, BY_ADMIN, operation_id)])
    return {"kind": "reboot", "operation_id": operation_id, "hostnames": [hostname]}
