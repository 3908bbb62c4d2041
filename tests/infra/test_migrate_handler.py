"""The migrations custom resource (functions/migrate) against a real PostgreSQL: it migrates on
Create and Update, leaves the data alone on Delete, and always answers CloudFormation."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
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


class _CloudFormation(BaseHTTPRequestHandler):
    """Stands in for the presigned S3 URL CloudFormation waits on."""

    responses: list[dict]

    def do_PUT(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        self.server.responses.append(
            {"body": json.loads(self.rfile.read(length)), "type": self.headers["Content-Type"]}
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cloudformation():
    server = HTTPServer(("127.0.0.1", 0), _CloudFormation)
    server.responses = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _event(server, request_type: str, physical_id: str | None = None) -> dict:
    event = {
        "RequestType": request_type,
        "ResponseURL": f"http://127.0.0.1:{server.server_address[1]}/response?signed=1",
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


def test_create_migrates_and_answers_success(fresh_database, cloudformation, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    handler_module.handler(_event(cloudformation, "Create"), CONTEXT)

    (response,) = cloudformation.responses
    body = response["body"]
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "lablink-schema"
    assert body["Data"]["Applied"] == ",".join(m.version for m in load_migrations())
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        "arn:aws:cloudformation:us-west-2:123456789012:stack/LabLink-dev-Database/guid",
        "request-1",
        "Migrations",
    )
    assert response["type"] == ""  # what the presigned URL was signed for
    assert {"vms", "lablink_schema_migrations"} <= _tables(url)


def test_update_on_a_current_schema_changes_nothing(fresh_database, cloudformation, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    handler_module.handler(_event(cloudformation, "Create"), CONTEXT)
    handler_module.handler(_event(cloudformation, "Update", "lablink-schema"), CONTEXT)

    second = cloudformation.responses[1]["body"]
    assert second["Status"] == "SUCCESS"
    assert second["Data"] == {"Applied": "none"}
    assert second["PhysicalResourceId"] == "lablink-schema"


def test_delete_keeps_the_schema_and_data(fresh_database, cloudformation, monkeypatch):
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    handler_module.handler(_event(cloudformation, "Create"), CONTEXT)
    before = _tables(url)
    handler_module.handler(_event(cloudformation, "Delete", "lablink-schema"), CONTEXT)

    assert cloudformation.responses[1]["body"]["Status"] == "SUCCESS"
    assert _tables(url) == before


def test_a_failed_migration_is_reported_not_left_hanging(cloudformation, monkeypatch):
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    handler_module.handler(_event(cloudformation, "Create"), CONTEXT)

    (response,) = cloudformation.responses
    assert response["body"]["Status"] == "FAILED"
    assert "OperationalError" in response["body"]["Reason"]
    assert len(json.dumps(response["body"])) < 4096


def test_a_blocked_migration_times_out_and_is_reported(fresh_database, cloudformation, monkeypatch):
    """Another session holds the migrations' advisory lock: the statement timeout the stack
    sets (PGOPTIONS) ends the wait, and CloudFormation hears of it."""
    url = fresh_database()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=1s")
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        handler_module.handler(_event(cloudformation, "Create"), CONTEXT)
    finally:
        holder.close()

    (response,) = cloudformation.responses
    assert response["body"]["Status"] == "FAILED"
    assert "QueryCanceled" in response["body"]["Reason"]
    assert "vms" not in _tables(url)
