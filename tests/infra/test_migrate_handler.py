"""The migrations custom resource's function (functions/migrate) against a real PostgreSQL,
called as the CDK provider framework calls it: it migrates on Create and Update and returns
the resource's id and data, leaves the data alone on Delete, and raises on failure (the
framework turns the exception into CloudFormation's FAILED answer, with its message)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import psycopg2
import pytest
from assembly import ROOT

from lablink.migrations import MIGRATION_LOCK_KEY, load_migrations


def _load_handler():
    spec = importlib.util.spec_from_file_location("migrate_handler", ROOT / "functions" / "migrate" / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler_module = _load_handler()


def _event(request_type: str, physical_id: str | None = None) -> dict:
    """What the provider framework passes on: CloudFormation's request without its response URL."""
    event = {
        "RequestType": request_type,
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/LabLink-dev-Database/guid",
        "RequestId": "request-1",
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::LablinkMigrations",
        "ResourceProperties": {"SchemaHash": "abc"},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


CONTEXT = SimpleNamespace(
    function_name="lablink-dev-migrate",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-west-2:123456789012:function:lablink-dev-migrate",
    aws_request_id="lambda-request-1",
    log_stream_name="2026/11/26/[$LATEST]abc",
)


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in cur.fetchall()}
    conn.close()
    return tables


def test_create_migrates_and_returns_the_resource(fresh_database, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    answer = handler_module.handler(_event("Create"), CONTEXT)

    assert answer == {
        "PhysicalResourceId": "lablink-schema",
        "Data": {"Applied": ",".join(m.version for m in load_migrations())},
    }
    assert {"vms", "lablink_schema_migrations"} <= _tables(url)


def test_update_on_a_current_schema_changes_nothing(fresh_database, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    handler_module.handler(_event("Create"), CONTEXT)
    answer = handler_module.handler(_event("Update", "lablink-schema"), CONTEXT)

    assert answer == {"PhysicalResourceId": "lablink-schema", "Data": {"Applied": "none"}}


def test_delete_keeps_the_schema_and_data(fresh_database, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    handler_module.handler(_event("Create"), CONTEXT)
    before = _tables(url)
    answer = handler_module.handler(_event("Delete", "lablink-schema"), CONTEXT)

    assert answer == {"PhysicalResourceId": "lablink-schema"}
    assert _tables(url) == before


def test_a_failed_migration_raises_for_the_framework_to_report(monkeypatch):
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(psycopg2.OperationalError):
        handler_module.handler(_event("Create"), CONTEXT)


def test_a_blocked_migration_times_out_and_raises(fresh_database, monkeypatch):
    """Another session holds the migrations' advisory lock: the statement timeout the stack
    sets (PGOPTIONS) ends the wait well inside the function's timeout."""
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=1s")
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        with pytest.raises(psycopg2.errors.QueryCanceled):
            handler_module.handler(_event("Create"), CONTEXT)
    finally:
        holder.close()

    assert "vms" not in _tables(url)
