"""Every data-layer operation against a real PostgreSQL, found and not found."""

from __future__ import annotations

import psycopg2
import pytest
from db_probe import (
    assignment_row,
    audit_trail,
    column_names,
    delete_all_vms,
    free_hostnames,
    launched_vm,
    log_event_count,
    recompute_total,
    replace_logs,
    row_count,
    token_hash,
    vm_of_email,
)

from lablink.config import LogsConfig
from lablink.db.errors import ClaimRefused, NoFreeVm, UnknownVm
from lablink.db.vm_logs import LOGS_TAIL_EVENTS
from lablink.models import LogEvent


def test_insert_and_read_back(db):
    assert db.vms.insert("vm-1", instance_id="i-1", token_hash="h") is True
    vm = db.vms.get("vm-1")
    assert vm["hostname"] == "vm-1"
    assert vm["status"] == "initializing"
    assert vm["inuse"] is False
    assert vm["instance_id"] == "i-1"
    assert "logs" not in vm and "token_hash" not in vm
    assert vm["createdat"] is not None
    assert token_hash(db, "vm-1") == "h"


def test_insert_twice_keeps_the_first_row(db):
    db.vms.insert("vm-1", status="running")
    assert db.vms.insert("vm-1", status="error") is False
    assert db.vms.get("vm-1")["status"] == "running"
    assert row_count(db) == 1


def test_insert_refuses_an_unknown_status(db):
    with pytest.raises(ValueError, match="unknown status"):
        db.vms.insert("vm-1", status="bogus")
    assert row_count(db) == 0


def test_reads_of_an_unknown_vm(db):
    assert db.vms.get("nope") is None
    assert db.vms.exists("nope") is False
    assert token_hash(db, "nope") is None
    assert assignment_row(db, "nope") is None
    assert vm_of_email(db, "nobody@example.org") is None
    with pytest.raises(UnknownVm):
        db.logs.get_text("nope")


def test_updates_of_an_unknown_vm_report_false(db):
    assert db.vms.set_status("nope", "running") is False
    assert db.vms.set_in_use("nope", True) is False
    assert db.vms.set_health("nope", "Healthy") is False
    assert db.vms.set_instance("nope", "i-9") is False
    assert replace_logs(db, "nope", "x") is False
    with pytest.raises(UnknownVm):
        db.startup.record("nope", {"cloud_init_duration_seconds": 1})


def test_get_all_vms_lists_every_column_but_logs_and_tokens(db):
    db.vms.insert("vm-2")
    db.vms.insert("vm-1")
    vms = db.vms.list_all()
    assert [vm["hostname"] for vm in vms] == ["vm-2", "vm-1"]  # oldest first
    expected = [c for c in column_names(db) if c not in ("logs", "token_hash", "claim_token_hash")]
    assert list(vms[0].keys()) == expected
    assert db.vms.list_hostnames() == ["vm-1", "vm-2"]


def test_status_updates_and_counts(db):
    for name in ("vm-1", "vm-2", "vm-3"):
        db.vms.insert(name)
    db.vms.set_status("vm-1", "running")
    db.vms.set_status("vm-2", "error")
    assert db.vms.count_by_status() == {"running": 1, "error": 1, "initializing": 1}
    assert db.vms.list_statuses() == {"vm-1": "running", "vm-2": "error", "vm-3": "initializing"}
    assert db.vms.get("vm-1")["last_seen_at"] is not None
    with pytest.raises(ValueError, match="unknown status"):
        db.vms.set_status("vm-1", "sleeping")
    assert db.vms.get("vm-1")["status"] == "running"


def test_an_assigned_vm_reporting_running_stays_assigned(db):
    db.vms.insert("vm-1", status="running")
    db.assignments.claim("a@example.org", "cmd")
    db.vms.set_status("vm-1", "running")
    assert db.vms.get("vm-1")["status"] == "assigned"
    db.vms.set_status("vm-1", "error")
    assert db.vms.get("vm-1")["status"] == "error"


def test_in_use_and_health(db):
    db.vms.insert("vm-1")
    assert db.vms.set_in_use("vm-1", True) is True
    assert db.vms.get("vm-1")["inuse"] is True
    with pytest.raises(ValueError):
        db.vms.set_in_use("vm-1", "yes")
    assert db.vms.set_health("vm-1", "Unhealthy") is True
    assert db.vms.get("vm-1")["healthy"] == "Unhealthy"
    with pytest.raises(ValueError, match="unknown GPU health"):
        db.vms.set_health("vm-1", "meh")
    assert db.vms.get("vm-1")["healthy"] == "Unhealthy"


def test_assignment_claims_a_running_vm_with_a_random_pin(db):
    db.vms.insert("vm-init")
    db.vms.insert("vm-run", status="running")
    assignment = db.assignments.claim("ada@example.org", "start-host --code=x")
    assert assignment.hostname == "vm-run"
    assert assignment.rejoined is False
    assert len(assignment.pin) == 6 and assignment.pin.isdigit()
    vm = db.vms.get("vm-run")
    assert (vm["useremail"], vm["crdcommand"], vm["pin"], vm["status"]) == (
        "ada@example.org", "start-host --code=x", assignment.pin, "assigned",
    )
    assert vm["assigned_at"] is not None
    assert vm_of_email(db, "ada@example.org") == {"hostname": "vm-run", "pin": assignment.pin, "crdcommand": "start-host --code=x"}
    assert assignment_row(db, "vm-run")["crdcommand"] == "start-host --code=x"


def test_pins_differ_between_assignments(db):
    for i in range(30):
        db.vms.insert(f"vm-{i}", status="running")
    pins = {db.assignments.claim(f"user{i}@example.org", "cmd").pin for i in range(30)}
    assert len(pins) > 1


def test_the_same_email_gets_its_own_vm_back_with_new_command_and_pin(db):
    db.vms.insert("vm-1", status="running")
    db.vms.insert("vm-2", status="running")
    first = db.assignments.claim("ada@example.org", "cmd-1")
    again = db.assignments.claim("ada@example.org", "cmd-2", first.claim_token)
    assert again.hostname == first.hostname
    assert again.rejoined is True and again.claim_token == first.claim_token
    vm = db.vms.get(first.hostname)
    assert vm["crdcommand"] == "cmd-2"
    assert vm["pin"] == again.pin
    assert db.assignments.count_free() == 1


def test_the_same_email_without_its_claim_token_is_refused_and_changes_nothing(db):
    db.vms.insert("vm-1", status="running")
    db.vms.insert("vm-2", status="running")
    first = db.assignments.claim("ada@example.org", "cmd-1")
    before = db.vms.list_all()
    for token in (None, "not-the-token"):
        with pytest.raises(ClaimRefused):
            db.assignments.claim("ada@example.org", "cmd-2", token)
    assert db.vms.list_all() == before and db.vms.get(first.hostname)["crdcommand"] == "cmd-1"


def test_no_free_vm_is_said_clearly_and_changes_nothing(db):
    db.vms.insert("vm-1")  # initializing: not assignable
    db.vms.insert("vm-2", status="error")
    with pytest.raises(NoFreeVm, match="No available VMs"):
        db.assignments.claim("ada@example.org", "cmd")
    assert all(vm["useremail"] is None for vm in db.vms.list_all())


def test_unassigned_listing_and_count(db):
    db.vms.insert("vm-1", status="running")
    db.vms.insert("vm-2", status="running")
    db.vms.insert("vm-3")
    assert free_hostnames(db) == ["vm-1", "vm-2"]
    db.assignments.claim("a@example.org", "cmd")
    assert free_hostnames(db) == ["vm-2"]
    assert db.assignments.count_free() == 1


def test_metrics_merge_and_the_total(db):
    db.vms.insert("vm-1")
    assert db.startup.record("vm-1", {"cloud_init_start": 1_700_000_000, "cloud_init_end": 1_700_000_090}) is None
    vm = db.vms.get("vm-1")
    assert vm["cloudinitdurationseconds"] == 90
    assert vm["cloudinitstarttime"].isoformat() == "2023-11-14T22:13:20"  # stored as UTC
    assert db.startup.record("vm-1", {"container_startup_duration_seconds": 30.5}) is None
    assert db.startup.record("vm-1", {"terraform_apply_duration_seconds": 60}) == 180.5
    assert recompute_total(db, "vm-1") == 180.5


@pytest.mark.parametrize(
    "metrics, message",
    [({"cloud_init_start": "soon"}, "must be a number"), ({"bogus_key": 1}, "unknown metric keys"),
     ({"container_end": float("nan")}, "must be a number"), ({"container_end": True}, "must be a number")],
)
def test_bad_metrics_are_refused_and_change_nothing(db, metrics, message):
    db.vms.insert("vm-1")
    before = db.vms.get("vm-1")
    with pytest.raises(ValueError, match=message):
        db.startup.record("vm-1", metrics)
    assert db.vms.get("vm-1") == before


LIMITS = LogsConfig()


def _events(start: int, count: int, prefix: str = "e") -> list[LogEvent]:
    return [LogEvent(f"{prefix}{i:08d}", 1_700_000_000_000 + i, f"line {i}") for i in range(start, start + count)]


def test_log_events_are_stored_once_and_refresh_the_logs_text(db):
    stream = launched_vm(db, "vm-1")
    result = db.logs.append("group", stream, _events(0, 3), LIMITS)
    assert (result.received, result.stored, result.duplicates, result.vm_known) == (3, 3, 0, True)
    again = db.logs.append("group", stream, _events(0, 3), LIMITS)
    assert (again.stored, again.duplicates) == (0, 3)
    assert db.logs.get_text("vm-1") == "line 0\nline 1\nline 2"
    assert log_event_count(db, "vm-1") == 3


def test_out_of_order_batches_read_in_time_order(db):
    stream = launched_vm(db, "vm-1")
    db.logs.append("group", stream, _events(5, 2), LIMITS)
    db.logs.append("group", stream, _events(0, 2), LIMITS)
    assert db.logs.get_text("vm-1") == "line 0\nline 1\nline 5\nline 6"


def test_logs_text_is_bounded_to_the_newest_events(db):
    stream = launched_vm(db, "vm-1")
    db.logs.append("group", stream, _events(0, LOGS_TAIL_EVENTS + 100), LIMITS)
    lines = db.logs.get_text("vm-1").split("\n")
    assert len(lines) == LOGS_TAIL_EVENTS
    assert lines[-1] == f"line {LOGS_TAIL_EVENTS + 99}"
    assert log_event_count(db, "vm-1") == LOGS_TAIL_EVENTS + 100


def test_events_of_an_unknown_stream_are_kept_aside(db):
    result = db.logs.append("group", "ghost-vm", _events(0, 2), LIMITS)
    assert (result.stored, result.vm_known) == (2, False)
    assert log_event_count(db, "ghost-vm") == 2
    assert row_count(db) == 0


def test_empty_log_batch_stores_nothing(db):
    stream = launched_vm(db, "vm-1")
    assert db.logs.append("group", stream, [], LIMITS).stored == 0
    assert db.logs.get_text("vm-1") == ""


def test_save_logs_replaces_the_text(db):
    db.vms.insert("vm-1")
    assert replace_logs(db, "vm-1", "hello") is True
    assert db.logs.get_text("vm-1") == "hello"


def test_delete_and_clear(db):
    for name in ("vm-1", "vm-2", "vm-3"):
        db.vms.insert(name)
    assert db.vms.delete(["vm-1", "nope"]) == 1
    assert db.vms.list_hostnames() == ["vm-2", "vm-3"]
    assert delete_all_vms(db) == 2
    assert row_count(db) == 0


def test_operations_progress_to_their_end(db):
    op = db.operations.create("launch", ["vm-1", "vm-2", "vm-3"])
    assert db.operations.get(op)["status"] == "queued"
    db.operations.record_progress(op, done=1)
    assert db.operations.get(op)["status"] == "running"
    db.operations.record_progress(op, done=1)
    db.operations.record_progress(op, failed=1, error="quota exceeded")
    final = db.operations.get(op)
    assert (final["status"], final["done"], final["failed"], final["error"]) == ("partial", 2, 1, "quota exceeded")
    assert final["hostnames"] == ["vm-1", "vm-2", "vm-3"]
    assert db.operations.get("not-a-uuid") is None
    assert db.operations.get("00000000-0000-0000-0000-000000000000") is None


def test_audit_trail_tells_the_story_of_a_vm(db):
    db.vms.insert("vm-1")
    db.vms.set_status("vm-1", "running")
    db.assignments.claim("ada@example.org", "cmd")
    db.vms.delete(["vm-1"])
    trail = audit_trail(db, "vm-1")
    assert [(a["action"], a["old_status"], a["new_status"]) for a in trail] == [
        ("INSERT", None, "initializing"),
        ("UPDATE", "initializing", "running"),
        ("UPDATE", "running", "assigned"),
        ("DELETE", "assigned", None),
    ]
    assert [a["assignment_changed"] for a in trail] == [False, False, True, True]
    assert trail[2]["new_email"] == "ada@example.org"
    assert {a["actor"] for a in trail} == {"test"}
    assert "crdcommand" in trail[2]["changed_columns"]


def test_a_lost_connection_is_reopened(db, database_url):
    db.vms.insert("vm-1")
    backend = db.connection.scalar("SELECT pg_backend_pid() AS pid")
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
    killer.close()
    assert db.vms.set_status("vm-1", "running") is True
    assert db.vms.get("vm-1")["status"] == "running"
