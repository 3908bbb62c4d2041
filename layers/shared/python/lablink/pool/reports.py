"""What the pool shows an admin: its status (counts, target, schedule, cost, latest actions
and failures) and the history of every assignment, with times in ISO 8601 UTC ("Z")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.models import GpuHealth, VmStatus
from lablink.phases import iso_utc
from lablink.pool.policy import get_policy, target_free

LATEST_ACTIONS = 100
LATEST_FAILURES = 10
# The history's columns, in order (CSV header and JSON keys); the startup phases in seconds.
HISTORY_COLUMNS = (
    "hostname",
    "email",
    "assigned_at",
    "released_at",
    "release_reason",
    "provisioning_s",
    "cloud_init_s",
    "container_s",
    "total_s",
    "instance_type",
    "cost_usd",
)
# history column -> the database's column of that startup phase
_PHASE_SOURCES = {
    "provisioning_s": "provisioning_seconds",
    "cloud_init_s": "cloud_init_seconds",
    "container_s": "container_seconds",
    "total_s": "total_startup_seconds",
}


def pool_status(db: Database, cfg: LablinkConfig, now: datetime) -> dict[str, Any]:
    policy = get_policy(db, cfg)
    vms = db.pool.list_vms()
    live = [vm for vm in vms if not vm["destroying"]]
    return {
        "free": sum(1 for vm in vms if vm["free"]),
        "assigned": sum(1 for vm in vms if vm["assigned"]),
        "booting": sum(1 for vm in live if vm["status"] in (None, VmStatus.INITIALIZING)),
        "unhealthy": sum(1 for vm in live if vm["status"] == VmStatus.ERROR or vm["healthy"] == GpuHealth.UNHEALTHY),
        # what the reconciler aims at now: nothing while paused or before the prewarm window
        "target_free": 0 if policy.paused else target_free(policy, now),
        "opens_at": iso_utc(policy.opens_at),
        "closes_at": iso_utc(policy.closes_at),
        "last_reconcile_at": iso_utc(db.pool.get_last_reconcile_at()),
        "cost_usd_so_far": db.history.cost_so_far(now, cfg.machine.machine_type, cfg.prices.hourly_usd),
        "actions": [
            {"at": iso_utc(a["at"]), "action": a["action"], "hostname": a["hostname"], "reason": a["reason"]}
            for a in db.pool.list_latest_actions(LATEST_ACTIONS)
        ],
        "failures": [
            {
                "at": iso_utc(f["at"]),
                "operation_id": f["operation_id"],
                "kind": f["kind"],
                "status": f["status"],
                "error": f["error"],
            }
            for f in db.operations.list_failures(LATEST_FAILURES)
        ],
    }


def _phase(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def history(db: Database, cfg: LablinkConfig, now: datetime) -> list[dict[str, Any]]:
    """Every assignment, oldest first (HISTORY_COLUMNS); an open one costs up to ``now``."""
    rows = db.history.list_assignments(now, cfg.machine.machine_type, cfg.prices.hourly_usd)
    return [
        {
            "hostname": row["hostname"],
            "email": row["email"],
            "assigned_at": iso_utc(row["assigned_at"]),
            "released_at": iso_utc(row["released_at"]),
            "release_reason": row["release_reason"],
            **{column: _phase(row[source]) for column, source in _PHASE_SOURCES.items()},
            "instance_type": row["instance_type"],
            "cost_usd": row["cost_usd"],
        }
        for row in rows
    ]
