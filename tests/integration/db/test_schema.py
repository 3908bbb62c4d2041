"""The schema is the seed's, column for column, with its NOTIFY trigger; migrations are
idempotent and safe to run concurrently; any configured table name works."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import threading

import psycopg2
import pytest
from psycopg2 import sql

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink.db.sqltext import to_text
from lablink.migrations import MIGRATION_TABLE, generate_init_sql, load_migrations, migrate

SEED_COLUMNS = [
    ("hostname", "character varying", 1024, None, "NO"),
    ("pin", "character varying", 1024, None, "YES"),
    ("crdcommand", "character varying", 1024, None, "YES"),
    ("useremail", "character varying", 1024, None, "YES"),
    ("inuse", "boolean", None, "false", "NO"),
    ("healthy", "character varying", 1024, None, "YES"),
    ("status", "character varying", 1024, None, "YES"),
    ("logs", "text", None, None, "YES"),
    ("terraformapplystarttime", "timestamp without time zone", None, None, "YES"),
    ("terraformapplyendtime", "timestamp without time zone", None, None, "YES"),
    ("terraformapplydurationseconds", "double precision", None, None, "YES"),
    ("cloudinitstarttime", "timestamp without time zone", None, None, "YES"),
    ("cloudinitendtime", "timestamp without time zone", None, None, "YES"),
    ("cloudinitdurationseconds", "double precision", None, None, "YES"),
    ("containerstarttime", "timestamp without time zone", None, None, "YES"),
    ("containerendtime", "timestamp without time zone", None, None, "YES"),
    ("containerstartupdurationseconds", "double precision", None, None, "YES"),
    ("totalstartupdurationseconds", "double precision", None, None, "YES"),
    ("createdat", "timestamp without time zone", None, "now()", "YES"),
]


def _columns(url: str, table: str = "vms") -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type, character_maximum_length, column_default, is_nullable "
            "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def test_seed_columns_are_kept_exactly_and_first(database_url):
    columns = _columns(database_url)
    assert columns[: len(SEED_COLUMNS)] == SEED_COLUMNS
    added = [c[0] for c in columns[len(SEED_COLUMNS) :]]
    assert added == ["token_hash", "instance_id", "assigned_at", "last_seen_at", "claim_token_hash", "inuse_changed_at"]


def test_hostname_is_the_primary_key(database_url):
    conn = psycopg2.connect(database_url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kcu.column_name FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name) "
            "WHERE tc.table_name = 'vms' AND tc.constraint_type = 'PRIMARY KEY'"
        )
        assert cur.fetchall() == [("hostname",)]
    conn.close()


def test_trigger_and_function_exist_as_in_the_seed(database_url):
    conn = psycopg2.connect(database_url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT action_timing, event_manipulation, action_statement "
            "FROM information_schema.triggers WHERE trigger_name = 'trigger_crd_command_insert_or_update' "
            "ORDER BY event_manipulation"
        )
        rows = cur.fetchall()
        cur.execute("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'trigger_crd_command_insert_or_update'")
        definition = cur.fetchone()[0]
    conn.close()
    assert rows == [
        ("AFTER", "INSERT", "EXECUTE FUNCTION notify_crd_command_update()"),
        ("AFTER", "UPDATE", "EXECUTE FUNCTION notify_crd_command_update()"),
    ]
    assert "AFTER INSERT OR UPDATE OF crdcommand ON public.vms FOR EACH ROW" in definition


class Listener:
    """A raw LISTEN connection, as the original client VMs held one."""

    def __init__(self, url: str, channel: str):
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def payloads(self, timeout: float = 1.0) -> list[dict]:
        received = []
        if select.select([self.conn], [], [], timeout)[0]:
            self.conn.poll()
            while self.conn.notifies:
                received.append(json.loads(self.conn.notifies.pop(0).payload))
        return received

    def close(self):
        self.conn.close()


def test_notify_payload_on_insert_and_on_assignment_only(database_url, db):
    listener = Listener(database_url, "vm_updates")
    try:
        db.vms.insert("vm-1", status="running")
        assert listener.payloads() == [{"HostName": "vm-1", "CrdCommand": None, "Pin": None}]

        assignment = db.assignments.claim("ada@example.org", "start-host --code=4/abc")
        assert listener.payloads() == [
            {"HostName": "vm-1", "CrdCommand": "start-host --code=4/abc", "Pin": assignment.pin}
        ]

        db.vms.set_status("vm-1", "error")
        db.vms.set_health("vm-1", "Healthy")
        db.vms.set_in_use("vm-1", True)
        db.startup.record("vm-1", {"cloud_init_duration_seconds": 3})
        assert listener.payloads(timeout=0.5) == []
    finally:
        listener.close()


def test_generated_init_sql_builds_the_schema_with_psql(fresh_database):
    psql = shutil.which("psql")
    assert psql, "psql (the PostgreSQL client) must be installed for this test"
    url = fresh_database()
    script = subprocess.run(
        [sys.executable, "-m", "lablink_cli", "generate-init-sql"], check=True, capture_output=True, text=True
    ).stdout
    subprocess.run([psql, url, "-v", "ON_ERROR_STOP=1", "-q"], input=script, check=True, capture_output=True, text=True)
    assert _columns(url)[: len(SEED_COLUMNS)] == SEED_COLUMNS
    # The bookkeeping came along: the runner finds nothing to do.
    assert migrate(url, DbConfig()) == []


def test_migrating_twice_is_a_no_op(fresh_database):
    url = fresh_database()
    first = migrate(url, DbConfig())
    assert first == [m.version for m in load_migrations()]
    assert migrate(url, DbConfig()) == []


def test_concurrent_runners_apply_each_migration_once(fresh_database):
    url = fresh_database()
    results, errors = [], []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        try:
            results.append(migrate(url, DbConfig()))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = sorted(v for result in results for v in result)
    assert applied == [m.version for m in load_migrations()]
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(MIGRATION_TABLE)))
        assert cur.fetchone()[0] == len(load_migrations())
    conn.close()


def test_a_changed_migration_is_refused(fresh_database):
    url = fresh_database()
    migrations = load_migrations()
    migrate(url, DbConfig(), migrations)
    tampered = [*migrations[:-1], type(migrations[-1])(migrations[-1].version, migrations[-1].name, migrations[-1].template + "\n-- edited")]
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(url, DbConfig(), tampered)


AWKWARD = DbConfig(table_name='VM "Table"; DROP TABLE x; --', message_channel="Updates 'quoted' channel")


def test_a_table_and_channel_that_need_quoting_work(fresh_database):
    url = fresh_database()
    migrate(url, AWKWARD)
    assert [c[0] for c in _columns(url, AWKWARD.table_name)][:3] == ["hostname", "pin", "crdcommand"]
    listener = Listener(url, AWKWARD.message_channel)
    database = Database(url, AWKWARD)
    try:
        database.vms.insert("vm-1", status="running")
        assert listener.payloads()[0]["HostName"] == "vm-1"
        assert database.assignments.claim("x@example.org", "cmd").hostname == "vm-1"
        assert listener.payloads()[0]["CrdCommand"] == "cmd"
        assert database.vms.list_all()[0]["useremail"] == "x@example.org"
    finally:
        database.close()
        listener.close()


def test_offline_quoting_matches_psycopg2(database_url):
    conn = psycopg2.connect(database_url)
    for value in ['plain', 'with "double" quotes', "it's", "back\\slash", 'VM "Table"; DROP TABLE x; --', "ünïcødé"]:
        for composable in (sql.Identifier(value), sql.Literal(value)):
            live = composable.as_string(conn)
            offline = to_text(composable)
            with conn.cursor() as cur:
                # Equal meaning, whatever the spelling: the server reads both to the same value.
                if isinstance(composable, sql.Literal):
                    cur.execute(sql.SQL("SELECT {} = {}").format(sql.SQL(live), sql.SQL(offline)))
                    assert cur.fetchone()[0] is True
                else:
                    assert offline == live
    conn.close()


def test_generate_init_sql_renders_the_configured_names():
    script = generate_init_sql(AWKWARD)
    assert 'CREATE TABLE "VM ""Table""; DROP TABLE x; --"' in script
    assert "'Updates ''quoted'' channel'" in script
