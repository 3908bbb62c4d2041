"""Every data-layer operation against a real PostgreSQL, found and not found."""

from __future__ import annotations

import psycopg2
import pytest

from lablink.models import LogEvent
from lablink.repository import LOGS_TAIL_EVENTS, NoFreeVm, UnknownVm


def test_insert_and_read_back(db):
    assert db.insert_vm("vm-1", instance_id="i-1", token_hash="h") is True
    vm = db.get_vm_by_hostname("vm-1")
    assert vm["hostname"] == "vm-1"
    assert vm["status"] == "initializing"
    assert vm["inuse"] is False
    assert vm["instance_id"] == "i-1"
    assert "logs" not in vm and "token_hash" not in vm
    assert vm["createdat"] is not None
    assert db.get_token_hash("vm-1") == "h"


def test_insert_twice_keeps_the_first_row(db):
    db.insert_vm("vm-1", status="running")
    assert db.insert_vm("vm-1", status="error") is False
    assert db.get_vm_by_hostname("vm-1")["status"] == "running"
    assert db.get_row_count() == 1


def test_insert_refuses_an_unknown_status(db):
    with pytest.raises(ValueError, match="unknown status"):
        db.insert_vm("vm-1", status="bogus")
    assert db.get_row_count() == 0


def test_reads_of_an_unknown_vm(db):
    assert db.get_vm_by_hostname("nope") is None
    assert db.vm_exists("nope") is False
    assert db.get_token_hash("nope") is None
    assert db.get_assignment("nope") is None
    assert db.get_vm_details("nobody@example.org") is None
    with pytest.raises(UnknownVm):
        db.get_vm_logs("nope")


def test_updates_of_an_unknown_vm_report_false(db):
    assert db.update_vm_status("nope", "running") is False
    assert db.update_vm_in_use("nope", True) is False
    assert db.update_health("nope", "Healthy") is False
    assert db.set_instance("nope", "i-9") is False
    assert db.save_logs_by_hostname("nope", "x") is False
    with pytest.raises(UnknownVm):
        db.update_vm_metrics("nope", {"cloud_init_duration_seconds": 1})


def test_get_all_vms_lists_every_column_but_logs_and_token(db):
    db.insert_vm("vm-2")
    db.insert_vm("vm-1")
    vms = db.get_all_vms()
    assert [vm["hostname"] for vm in vms] == ["vm-2", "vm-1"]  # oldest first
    expected = [c for c in db.get_column_names() if c not in ("logs", "token_hash")]
    assert list(vms[0].keys()) == expected
    assert db.get_hostnames() == ["vm-1", "vm-2"]


def test_status_updates_and_counts(db):
    for name in ("vm-1", "vm-2", "vm-3"):
        db.insert_vm(name)
    db.update_vm_status("vm-1", "running")
    db.update_vm_status("vm-2", "error")
    assert db.get_status_counts() == {"running": 1, "error": 1, "initializing": 1}
    assert db.get_all_vm_status() == {"vm-1": "running", "vm-2": "error", "vm-3": "initializing"}
    assert db.get_vm_by_hostname("vm-1")["last_seen_at"] is not None
    with pytest.raises(ValueError, match="unknown status"):
        db.update_vm_status("vm-1", "sleeping")
    assert db.get_vm_by_hostname("vm-1")["status"] == "running"


def test_an_assigned_vm_reporting_running_stays_assigned(db):
    db.insert_vm("vm-1", status="running")
    db.assign_vm("a@example.org", "cmd")
    db.update_vm_status("vm-1", "running")
    assert db.get_vm_by_hostname("vm-1")["status"] == "assigned"
    db.update_vm_status("vm-1", "error")
    assert db.get_vm_by_hostname("vm-1")["status"] == "error"


def test_in_use_and_health(db):
    db.insert_vm("vm-1")
    assert db.update_vm_in_use("vm-1", True) is True
    assert db.get_vm_by_hostname("vm-1")["inuse"] is True
    with pytest.raises(ValueError):
        db.update_vm_in_use("vm-1", "yes")
    assert db.update_health("vm-1", "Unhealthy") is True
    assert db.get_vm_by_hostname("vm-1")["healthy"] == "Unhealthy"
    with pytest.raises(ValueError, match="unknown GPU health"):
        db.update_health("vm-1", "meh")
    assert db.get_vm_by_hostname("vm-1")["healthy"] == "Unhealthy"


def test_assignment_claims_a_running_vm_with_a_random_pin(db):
    db.insert_vm("vm-init")
    db.insert_vm("vm-run", status="running")
    assignment = db.assign_vm("ada@example.org", "start-host --code=x")
    assert assignment.hostname == "vm-run"
    assert assignment.rejoined is False
    assert len(assignment.pin) == 6 and assignment.pin.isdigit()
    vm = db.get_vm_by_hostname("vm-run")
    assert (vm["useremail"], vm["crdcommand"], vm["pin"], vm["status"]) == (
        "ada@example.org", "start-host --code=x", assignment.pin, "assigned",
    )
    assert vm["assigned_at"] is not None
    assert db.get_vm_details("ada@example.org") == {"hostname": "vm-run", "pin": assignment.pin, "crdcommand": "start-host --code=x"}
    assert db.get_assignment("vm-run")["crdcommand"] == "start-host --code=x"


def test_pins_differ_between_assignments(db):
    for i in range(30):
        db.insert_vm(f"vm-{i}", status="running")
    pins = {db.assign_vm(f"user{i}@example.org", "cmd").pin for i in range(30)}
    assert len(pins) > 1


def test_the_same_email_gets_its_own_vm_back_with_new_command_and_pin(db):
    db.insert_vm("vm-1", status="running")
    db.insert_vm("vm-2", status="running")
    first = db.assign_vm("ada@example.org", "cmd-1")
    again = db.assign_vm("ada@example.org", "cmd-2")
    assert again.hostname == first.hostname
    assert again.rejoined is True
    vm = db.get_vm_by_hostname(first.hostname)
    assert vm["crdcommand"] == "cmd-2"
    assert vm["pin"] == again.pin
    assert db.count_unassigned_vms() == 1


def test_no_free_vm_is_said_clearly_and_changes_nothing(db):
    db.insert_vm("vm-1")  # initializing: not assignable
    db.insert_vm("vm-2", status="error")
    with pytest.raises(NoFreeVm, match="No available VMs"):
        db.assign_vm("ada@example.org", "cmd")
    assert all(vm["useremail"] is None for vm in db.get_all_vms())


def test_unassigned_listing_and_count(db):
    db.insert_vm("vm-1", status="running")
    db.insert_vm("vm-2", status="running")
    db.insert_vm("vm-3")
    assert db.get_unassigned_vms() == ["vm-1", "vm-2"]
    db.assign_vm("a@example.org", "cmd")
    assert db.get_unassigned_vms() == ["vm-2"]
    assert db.count_unassigned_vms() == 1


def test_metrics_merge_and_the_total(db):
    db.insert_vm("vm-1")
    assert db.update_vm_metrics("vm-1", {"cloud_init_start": 1_700_000_000, "cloud_init_end": 1_700_000_090}) is None
    vm = db.get_vm_by_hostname("vm-1")
    assert vm["cloudinitdurationseconds"] == 90
    assert vm["cloudinitstarttime"].isoformat() == "2023-11-14T22:13:20"  # stored as UTC
    assert db.update_vm_metrics("vm-1", {"container_startup_duration_seconds": 30.5}) is None
    assert db.update_vm_metrics("vm-1", {"terraform_apply_duration_seconds": 60}) == 180.5
    assert db.calculate_total_startup_time("vm-1") == 180.5


@pytest.mark.parametrize(
    "metrics, message",
    [({"cloud_init_start": "soon"}, "must be a number"), ({"bogus_key": 1}, "unknown metric keys"),
     ({"container_end": float("nan")}, "must be a number"), ({"container_end": True}, "must be a number")],
)
def test_bad_metrics_are_refused_and_change_nothing(db, metrics, message):
    db.insert_vm("vm-1")
    before = db.get_vm_by_hostname("vm-1")
    with pytest.raises(ValueError, match=message):
        db.update_vm_metrics("vm-1", metrics)
    assert db.get_vm_by_hostname("vm-1") == before


def _events(start: int, count: int, prefix: str = "e") -> list[LogEvent]:
    return [LogEvent(f"{prefix}{i:08d}", 1_700_000_000_000 + i, f"line {i}") for i in range(start, start + count)]


def test_log_events_are_stored_once_and_refresh_the_logs_text(db):
    db.insert_vm("vm-1")
    result = db.append_log_events("group", "vm-1", _events(0, 3))
    assert (result.received, result.stored, result.duplicates, result.vm_known) == (3, 3, 0, True)
    again = db.append_log_events("group", "vm-1", _events(0, 3))
    assert (again.stored, again.duplicates) == (0, 3)
    assert db.get_vm_logs("vm-1") == "line 0\nline 1\nline 2"
    assert db.count_log_events("vm-1") == 3


def test_out_of_order_batches_read_in_time_order(db):
    db.insert_vm("vm-1")
    db.append_log_events("group", "vm-1", _events(5, 2))
    db.append_log_events("group", "vm-1", _events(0, 2))
    assert db.get_vm_logs("vm-1") == "line 0\nline 1\nline 5\nline 6"


def test_logs_text_is_bounded_to_the_newest_events(db):
    db.insert_vm("vm-1")
    db.append_log_events("group", "vm-1", _events(0, LOGS_TAIL_EVENTS + 100))
    lines = db.get_vm_logs("vm-1").split("\n")
    assert len(lines) == LOGS_TAIL_EVENTS
    assert lines[-1] == f"line {LOGS_TAIL_EVENTS + 99}"
    assert db.count_log_events("vm-1") == LOGS_TAIL_EVENTS + 100


def test_events_of_an_unknown_stream_are_kept_aside(db):
    result = db.append_log_events("group", "ghost-vm", _events(0, 2))
    assert (result.stored, result.vm_known) == (2, False)
    assert db.count_log_events("ghost-vm") == 2
    assert db.get_row_count() == 0


def test_empty_log_batch_stores_nothing(db):
    db.insert_vm("vm-1")
    assert db.append_log_events("group", "vm-1", []).stored == 0
    assert db.get_vm_logs("vm-1") == ""


def test_save_logs_replaces_the_text(db):
    db.insert_vm("vm-1")
    assert db.save_logs_by_hostname("vm-1", "hello") is True
    assert db.get_vm_logs("vm-1") == "hello"


def test_delete_and_clear(db):
    for name in ("vm-1", "vm-2", "vm-3"):
        db.insert_vm(name)
    assert db.delete_vms(["vm-1", "nope"]) == 1
    assert db.get_hostnames() == ["vm-2", "vm-3"]
    assert db.clear_database() == 2
    assert db.get_row_count() == 0


def test_operations_progress_to_their_end(db):
    op = db.create_operation("launch", ["vm-1", "vm-2", "vm-3"])
    assert db.get_operation(op)["status"] == "queued"
    db.record_operation_progress(op, done=1)
    assert db.get_operation(op)["status"] == "running"
    db.record_operation_progress(op, done=1)
    db.record_operation_progress(op, failed=1, error="quota exceeded")
    final = db.get_operation(op)
    assert (final["status"], final["done"], final["failed"], final["error"]) == ("partial", 2, 1, "quota exceeded")
    assert final["hostnames"] == ["vm-1", "vm-2", "vm-3"]
    assert db.get_operation("not-a-uuid") is None
    assert db.get_operation("00000000-0000-0000-0000-000000000000") is None


def test_audit_trail_tells_the_story_of_a_vm(db):
    db.insert_vm("vm-1")
    db.update_vm_status("vm-1", "running")
    db.assign_vm("ada@example.org", "cmd")
    db.delete_vms(["vm-1"])
    trail = db.get_audit_trail("vm-1")
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
    db.insert_vm("vm-1")
    backend = db._one("SELECT pg_backend_pid() AS pid")["pid"]
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
    killer.close()
    assert db.update_vm_status("vm-1", "running") is True
    assert db.get_vm_by_hostname("vm-1")["status"] == "running"
