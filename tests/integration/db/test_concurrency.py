"""A room full of researchers clicking at the same second: every free VM is handed out once,
nobody gets two, and the rest are told clearly that none is free."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from db_probe import row_count

from lablink.db.database import Database
from lablink.db.errors import NoFreeVm


def _burst(database_url: str, emails: list[str]) -> tuple[list, int, list]:
    """Release one thread per email at once, each on its own connection (as separate Lambda
    environments would be); returns (assignments, refusals, errors)."""
    databases = [Database(database_url, actor=f"burst-{i}") for i in range(len(emails))]
    for database in databases:
        row_count(database)  # connect before the start line
    barrier = threading.Barrier(len(emails))
    assignments, errors = [], []
    refusals = Counter()
    lock = threading.Lock()

    def request(database: Database, email: str):
        barrier.wait()
        try:
            result = database.assignments.claim(email, f"start-host --code={email}")
            with lock:
                assignments.append((email, result))
        except NoFreeVm:
            with lock:
                refusals["none free"] += 1
        except Exception as error:  # noqa: BLE001 - any other outcome fails the test below
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=request, args=(d, e)) for d, e in zip(databases, emails, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for database in databases:
        database.close()
    return assignments, refusals["none free"], errors


@pytest.fixture(params=["direct", "through PgBouncer"])
def requester_url(request, database_url):
    """The requesters' path: straight to PostgreSQL, and through the transaction pooler the
    functions use (there the advisory lock and the claim must stay in one transaction)."""
    if request.param == "direct":
        return database_url
    return request.getfixturevalue("pooled_database_url")


@pytest.mark.parametrize("round_number", range(3))
def test_200_researchers_against_50_vms(db, requester_url, round_number):
    for i in range(50):
        db.vms.insert(f"vm-{round_number}-{i}", status="running")
    emails = [f"researcher{i}@example.org" for i in range(200)]

    assignments, refused, errors = _burst(requester_url, emails)

    assert errors == []
    assert len(assignments) == 50
    assert refused == 150
    hostnames = [a.hostname for _, a in assignments]
    assert len(set(hostnames)) == 50, "a VM was handed to two researchers"
    rows = db.vms.list_all()
    assert all(vm["useremail"] is not None for vm in rows)
    emails_in_db = [vm["useremail"] for vm in rows]
    assert len(set(emails_in_db)) == 50, "a researcher holds two VMs"
    # Every researcher's answer matches the row: the VM holds that researcher's command and PIN.
    by_host = {vm["hostname"]: vm for vm in rows}
    for email, assignment in assignments:
        vm = by_host[assignment.hostname]
        assert (vm["useremail"], vm["pin"], vm["crdcommand"]) == (email, assignment.pin, f"start-host --code={email}")


@pytest.mark.parametrize("round_number", range(3))
def test_one_email_clicking_20_times_at_once_gets_one_vm(db, requester_url, round_number):
    for i in range(10):
        db.vms.insert(f"vm-{i}", status="running")

    assignments, refused, errors = _burst(requester_url, ["ada@example.org"] * 20)

    assert errors == [] and refused == 0
    assert len({a.hostname for _, a in assignments}) == 1
    assert sum(not a.rejoined for _, a in assignments) == 1
    assert db.assignments.count_free() == 9
    assert len([vm for vm in db.vms.list_all() if vm["useremail"] == "ada@example.org"]) == 1


def test_concurrent_phase_reports_always_produce_the_total(db, database_url):
    """The three phases of many VMs arriving at once, from different connections."""
    hosts = [f"vm-{i}" for i in range(30)]
    for host in hosts:
        db.vms.insert(host)
    phases = [
        {"terraform_apply_duration_seconds": 10},
        {"cloud_init_duration_seconds": 20},
        {"container_startup_duration_seconds": 30},
    ]
    databases = [Database(database_url) for _ in phases]
    barrier = threading.Barrier(len(phases))

    def report(database, metrics):
        barrier.wait()
        for host in hosts:
            database.startup.record(host, metrics)

    threads = [threading.Thread(target=report, args=(d, m)) for d, m in zip(databases, phases, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in databases:
        d.close()
    assert {vm["totalstartupdurationseconds"] for vm in db.vms.list_all()} == {60.0}
