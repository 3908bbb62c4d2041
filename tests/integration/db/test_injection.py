"""Values full of SQL metacharacters are stored literally and harm nothing."""

from __future__ import annotations

import pytest

from lablink.models import LogEvent

NASTY = [
    "'; DROP TABLE vms; --",
    'a"b\'c;d',
    "x'); DELETE FROM vms WHERE ('1'='1",
    "%s %(email)s {t} $1",
    "back\\slash\\'",
    "Robert'); DROP TABLE vm_audit;--@example.org",
]


@pytest.mark.parametrize("value", NASTY)
def test_nasty_values_round_trip_literally(db, value):
    db.insert_vm(value, status="running")
    db.insert_vm("bystander", status="running")
    assert db.get_vm_by_hostname(value)["hostname"] == value
    assignment = db.assign_vm(value, value)
    vm = db.get_vm_by_hostname(assignment.hostname)
    assert (vm["useremail"], vm["crdcommand"]) == (value, value)
    assert db.update_health(value, "Healthy") is (assignment.hostname == value)
    db.append_log_events(value, value, [LogEvent(value, 1, value)])
    assert db.count_log_events(value) == 1
    # Nothing else was touched: both rows and every table are still there.
    assert sorted(db.get_hostnames()) == sorted([value, "bystander"])
    assert len(db.get_audit_trail()) >= 3
    assert db.get_vm_details(value)["crdcommand"] == value
