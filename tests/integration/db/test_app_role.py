"""The application role (migration 0007), logged in as such: it does everything the functions
and the listener do (claim, metrics, logs, operations, the audit trigger, LISTEN) and nothing
that changes the schema. In AWS the functions, the RDS Proxy and the listener log in as this
role; only the migrations use the master user."""

from __future__ import annotations

import json

import boto3
import psycopg2
import psycopg2.errors
import pytest
from moto import mock_aws
from psycopg2 import sql

from lablink import environment
from lablink.config import DbConfig, LogsConfig
from lablink.db.database import Database
from lablink.db.roles import app_role_password, set_password
from lablink.models import LogEvent
from lablink.phases import METRIC_KEYS
from lablink.tokens import hash_token, log_stream_name

APP_ROLE = DbConfig().app_role
PASSWORD = "app-role-test-password"


@pytest.fixture
def app_url(database_url):
    """The migrated test database, logged in as the application role (its password set as the
    migrations step sets it in AWS)."""
    set_password(database_url, APP_ROLE, PASSWORD)
    return psycopg2.extensions.make_dsn(database_url, user=APP_ROLE, password=PASSWORD)


@pytest.fixture
def app_db(app_url):
    database = Database(app_url, DbConfig(), actor="request")
    yield database
    database.close()


def test_the_role_does_what_the_functions_do(app_db, database_url):
    assert app_db.vms.insert("vm-1", status="running", instance_id="i-1", token_hash=hash_token("t1"))
    assert app_db.assignments.count_free() == 1
    assignment = app_db.assignments.claim("a@example.org", "crd --code=1")
    assert assignment.hostname == "vm-1"
    app_db.startup.record("vm-1", {key: 1.0 for key in METRIC_KEYS})
    app_db.logs.append(
        "/lablink/dev/client",
        log_stream_name("vm-1", "t1"),
        [LogEvent("e1", 1_700_000_000_000, "booted")],
        LogsConfig(),
    )
    assert "booted" in app_db.logs.get_text("vm-1")
    operation_id = app_db.operations.create("launch", ["vm-2"])
    app_db.operations.record_progress(operation_id, done=1)
    assert app_db.operations.get(operation_id)["status"] == "succeeded"
    assert app_db.vms.delete(["vm-1"]) == 1

    # The audit trigger wrote the trail under the application role's session.
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT action FROM vm_audit WHERE hostname = 'vm-1' ORDER BY audit_id")
        actions = [row[0] for row in cur.fetchall()]
    conn.close()
    assert actions[0] == "INSERT" and actions[-1] == "DELETE" and "UPDATE" in actions


def test_the_role_may_listen(app_url):
    conn = psycopg2.connect(app_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(DbConfig().message_channel)))
            cur.execute("UNLISTEN *")
    finally:
        conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE vms",
        "ALTER TABLE vms ADD COLUMN extra TEXT",
        "CREATE TABLE intruder (id INT)",
        "TRUNCATE vm_audit",
        "DELETE FROM vm_audit",
        "UPDATE vm_audit SET actor = 'someone else'",
        "DROP FUNCTION lablink_audit_vm_change() CASCADE",
        "ALTER TABLE vms DISABLE TRIGGER trigger_vm_audit",
        "DELETE FROM lablink_schema_migrations",
        "CREATE ROLE another",
    ],
)
def test_the_role_cannot_change_the_schema_or_the_audit_trail(app_url, statement):
    conn = psycopg2.connect(app_url)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)
    finally:
        conn.close()


def test_the_password_is_set_from_the_secret_as_a_scram_verifier(database_url, monkeypatch):
    """In AWS the migrations step reads the role's secret and sets its password; the server
    receives only the SCRAM verifier, never the password itself."""
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-west-2")
        arn = secrets.create_secret(Name="app", SecretString=json.dumps({"username": APP_ROLE, "password": PASSWORD}))["ARN"]
        monkeypatch.setenv(environment.APP_DB_SECRET_ARN, arn)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
        password = app_role_password()
    assert password == PASSWORD
    set_password(database_url, APP_ROLE, password)
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (APP_ROLE,))
        (verifier,) = cur.fetchone()
    conn.close()
    assert verifier.startswith("SCRAM-SHA-256$") and PASSWORD not in verifier


def test_no_app_role_secret_outside_aws(monkeypatch):
    monkeypatch.delenv(environment.APP_DB_SECRET_ARN, raising=False)
    assert app_role_password() is None
