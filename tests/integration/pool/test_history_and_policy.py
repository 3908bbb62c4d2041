"""History written by the database on every path that ends an assignment, its cost, and the
policy's validation (what PUT /api/pool will answer 422 with)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from lablink.config import LablinkConfig
from lablink.models import VmStatus
from lablink.pool.policy import get_policy, update_policy

PRICES = LablinkConfig().prices.hourly_usd


def _assigned_vm(db, hostname: str, instance_id: str, email: str) -> None:
    db.vms.insert(hostname, status=VmStatus.RUNNING, instance_id=instance_id)
    db.assignments.claim(email, "start-host --code=x")


def test_history_outlives_a_destroyed_vm_with_cost(db):
    _assigned_vm(db, "vm-1", "i-0000000000000001", "ada@example.org")
    db.vms.delete(["vm-1"])  # the destroy step's own statement: no reason given
    later = datetime.now(UTC) + timedelta(hours=2)

    (row,) = db.history.list_assignments(later, "g4dn.xlarge", PRICES)
    assert (row["hostname"], row["email"], row["release_reason"]) == ("vm-1", "ada@example.org", "destroyed")
    assert row["instance_type"] == "g4dn.xlarge" and row["released_at"] is not None
    # the instance stopped costing when its row went: two hours later the bill has not grown
    assert db.history.cost_so_far(later, "g4dn.xlarge", PRICES) < 0.01


def test_cost_so_far_is_instance_hours_times_the_hourly_price(db):
    db.vms.insert("vm-1", status=VmStatus.RUNNING, instance_id="i-0000000000000001")
    db.vms.insert("vm-2", status=VmStatus.RUNNING, instance_id="i-0000000000000002")
    cost = db.history.cost_so_far(datetime.now(UTC) + timedelta(hours=10), "g5.xlarge", PRICES)
    assert cost == pytest.approx(2 * 10 * PRICES["g5.xlarge"], rel=1e-3)
    assert db.history.cost_so_far(datetime.now(UTC) + timedelta(hours=10), "x9.unknown", PRICES) == 0


def test_released_email_keeps_its_reason_and_a_new_claim_opens_a_new_entry(db):
    _assigned_vm(db, "vm-1", "i-0000000000000001", "ada@example.org")
    assert db.pool.release(["vm-1"], "idle") == 1
    db.vms.insert("vm-2", status=VmStatus.RUNNING, instance_id="i-0000000000000002")
    assert db.assignments.claim("ada@example.org", "start-host --code=y").hostname == "vm-2"

    rows = db.history.list_assignments(datetime.now(UTC), "g4dn.xlarge", PRICES)
    assert [(r["hostname"], r["release_reason"]) for r in rows] == [("vm-1", "idle"), ("vm-2", None)]


def test_policy_defaults_come_from_the_config_and_changes_are_validated_whole(db):
    cfg = LablinkConfig.model_validate({"pool": {"min_free": 2, "max_vms": 20}})
    assert get_policy(db, cfg).min_free == 2
    assert update_policy(db, cfg, {"min_free": 5}).max_vms == 20
    assert get_policy(db, cfg).min_free == 5

    opens = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for bad in (
        {"min_free": 30},  # above max_vms
        {"min_free": -1},
        {"opens_at": opens, "closes_at": opens - timedelta(hours=1)},
        {"opens_at": "2026-03-02T09:00:00"},  # no time zone
        {"min_fre": 1},  # unknown field
    ):
        with pytest.raises(ValidationError):
            update_policy(db, cfg, bad)
    assert get_policy(db, cfg).min_free == 5  # nothing stored by a refused change
