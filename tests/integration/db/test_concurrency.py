"""A room full of researchers clicking at the same second: every free VM is handed out once,
nobody gets two, and the rest are told clearly that none is free."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager

import psycopg2
import pytest
from db_probe import row_count
from psycopg2 import sql

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink.db.errors import ClaimRefused, NoFreeVm


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

    # The first claim wins; the other clicks hold no claim token: refused, nothing changed.
    assert refused == 0 and len(errors) == 19 and all(isinstance(e, ClaimRefused) for e in errors)
    assert len(assignments) == 1 and not assignments[0][1].rejoined
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


@contextmanager
def telemetry_holding_row_lock(database_url: str, hostname: str):
    """Another session in the middle of a telemetry update of ``hostname``: its row is locked
    until the block ends (or ``release`` is called), as a log batch or a status report does."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {t} SET last_seen_at = now() WHERE hostname = %s").format(t=sql.Identifier(DbConfig().table_name)),
                (hostname,),
            )
            assert cur.rowcount == 1
        yield conn.commit
        conn.commit()
    finally:
        conn.close()


def test_a_free_vm_locked_for_a_moment_is_still_handed_out(db, database_url, requester_url):
    """Issue 12: the only free VM's row locked by a telemetry update made the claim, which
    skips locked rows, answer "No available VMs" although that VM was free."""
    db.vms.insert("vm-1", status="running")
    requester = Database(requester_url, actor="researcher")
    row_count(requester)  # connected beforehand, so the first attempt meets the lock
    try:
        with telemetry_holding_row_lock(database_url, "vm-1") as release:
            commit_soon = threading.Timer(0.015, release)  # the update commits while the claim runs
            commit_soon.start()
            try:
                assignment = requester.assignments.claim("ada@example.org", "start-host --code=ada")
            finally:
                commit_soon.join()
    finally:
        requester.close()
    assert assignment.hostname == "vm-1" and not assignment.rejoined
    assert db.assignments.count_free() == 0


def test_a_free_vm_locked_for_long_gives_none_free_without_waiting_for_the_lock(db, database_url, requester_url):
    db.vms.insert("vm-1", status="running")
    requester = Database(requester_url, actor="researcher")
    row_count(requester)
    try:
        with telemetry_holding_row_lock(database_url, "vm-1"):
            started = time.monotonic()
            with pytest.raises(NoFreeVm):
                requester.assignments.claim("ada@example.org", "start-host --code=ada")
            answered_after = time.monotonic() - started
    finally:
        requester.close()
    assert answered_after < 1.0, "the claim waited on the lock instead of answering"
    assert db.assignments.count_free() == 1  # nothing was claimed
