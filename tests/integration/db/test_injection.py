"""Values full of SQL metacharacters are stored literally and harm nothing."""

from __future__ import annotations

import pytest
from db_probe import audit_trail, log_event_count, vm_of_email

from lablink.config import LogsConfig
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
    db.vms.insert(value, status="running")
    db.vms.insert("bystander", status="running")
    assert db.vms.get(value)["hostname"] == value
    assignment = db.assignments.claim(value, value)
    vm = db.vms.get(assignment.hostname)
    assert (vm["useremail"], vm["crdcommand"]) == (value, value)
    assert db.vms.set_health(value, "Healthy") is (assignment.hostname == value)
    db.logs.append(value, value, [LogEvent(value, 1, value)], LogsConfig())
    assert log_event_count(db, value) == 1
    # Nothing else was touched: both rows and every table are still there.
    assert sorted(db.vms.list_hostnames()) == sorted([value, "bystander"])
    assert len(audit_trail(db)) >= 3
    assert vm_of_email(db, value)["crdcommand"] == value
