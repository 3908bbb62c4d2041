"""The data layer behind a transaction pooler (PgBouncer, transaction mode, default settings),
as the functions are behind RDS Proxy in AWS: no startup options, no session state; the
audit trail names the right actor even when actors share one server connection; timestamps
are UTC whatever the server's time zone. Each limit is described in docs/RDS-PROXY.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2 import sql

from lablink.api.admin import _jsonable
from lablink.config import DbConfig
from lablink.db.database import Database
from lablink_local.pgbouncer import LocalPgBouncer


@pytest.fixture
def one_server_connection(pg_admin_url):
    """A pooler with ONE server connection per database: every client shares it."""
    with LocalPgBouncer(pg_admin_url, pool_size=1) as bouncer:
        yield bouncer


def test_the_pooler_refuses_startup_options_as_rds_proxy_does(pooled_database_url):
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter: options"):
        psycopg2.connect(pooled_database_url, options="-c timezone=UTC")


def test_the_data_layer_answers_through_the_pooler(pooled_database_url):
    database = Database(pooled_database_url, DbConfig(), actor="test")
    try:
        database.vms.insert("lablink-vm-test-1", status="running")
        assert [vm["hostname"] for vm in database.vms.list_all()] == ["lablink-vm-test-1"]
        assert database.assignments.claim("ada@example.org", "start-host --code=x").hostname == "lablink-vm-test-1"
    finally:
        database.close()


def _audit(database: Database) -> list[tuple[str, str, str]]:
    rows = database.connection.all("SELECT actor, action, hostname FROM vm_audit ORDER BY audit_id")
    return [(r["actor"], r["action"], r["hostname"]) for r in rows]


def test_audit_names_each_actor_when_two_share_one_server_connection(database_url, one_server_connection):
    url = one_server_connection.pooled(database_url)
    alice, bob = Database(url, DbConfig(), actor="alice"), Database(url, DbConfig(), actor="bob")
    try:
        alice.vms.insert("vm-a")
        bob.vms.insert("vm-b")
        alice.vms.set_status("vm-b", "running")
        bob.vms.set_status("vm-a", "running")
        alice.assignments.claim("ada@example.org", "start-host --code=x")
        bob.vms.delete(["vm-a"])
        alice.vms.delete(["vm-b"])
        backends = {alice.connection.scalar("SELECT pg_backend_pid()"), bob.connection.scalar("SELECT pg_backend_pid()")}
        assert len(backends) == 1, "the two clients must share one server connection for this test to mean anything"

        assert _audit(alice) == [
            ("alice", "INSERT", "vm-a"),
            ("bob", "INSERT", "vm-b"),
            ("alice", "UPDATE", "vm-b"),
            ("bob", "UPDATE", "vm-a"),
            ("alice", "UPDATE", "vm-a"),  # the claim: vm-a is the older VM
            ("bob", "DELETE", "vm-a"),
            ("alice", "DELETE", "vm-b"),
        ]
        # Nothing stays behind on the shared server connection for a client that sets nothing.
        with psycopg2.connect(url) as plain, plain.cursor() as cur:
            cur.execute("SELECT COALESCE(current_setting('lablink.actor', true), '')")
            assert cur.fetchone() == ("",)
    finally:
        alice.close()
        bob.close()


def test_timestamps_are_utc_whatever_the_database_time_zone(pg_admin_url, database_url, pooler):
    """The database runs 14 hours ahead of UTC; what the code stores and shows is UTC all the
    same, with no session setting (none can be made through the pooler)."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg2.connect(pg_admin_url) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} SET timezone = 'Pacific/Kiritimati'").format(sql.Identifier(name)))
    database = Database(pooler.pooled(database_url), DbConfig(), actor="test")
    try:
        assert database.connection.scalar("SHOW timezone") == "Pacific/Kiritimati", "the test needs a non-UTC session time zone"
        database.vms.insert("lablink-vm-test-1", status="running")
        database.assignments.claim("ada@example.org", "start-host --code=x")
        vm = database.vms.list_all()[0]
        now = datetime.now(UTC)
        assert abs(vm["createdat"] - now.replace(tzinfo=None)) < timedelta(minutes=1)
        assert abs(vm["assigned_at"] - now) < timedelta(minutes=1)
        # What the admin API shows (GET /api/admin/vms, export-metrics).
        shown = _jsonable(vm["assigned_at"])
        assert shown.endswith("+00:00") and abs(datetime.fromisoformat(shown) - now) < timedelta(minutes=1)
    finally:
        database.close()
