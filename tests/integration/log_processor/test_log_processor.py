"""The log-subscription processor on real gzip+base64 CloudWatch batches: each event stored
once, control messages ignored, unknown streams kept aside, malformed payloads reported."""

from __future__ import annotations

import base64
import gzip
import json
import socket

import pytest
from db_probe import launched_vm, log_event_count

from lablink import runtime
from lablink.db.errors import DatabaseUnreachable
from lablink.logs import log_lines
from lablink_local.gateway import LambdaContext, load_function

GROUP = "/lablink/test/client-vms"
VM = "lablink-vm-test-1"


def subscription_event(payload: dict | bytes) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"awslogs": {"data": base64.b64encode(gzip.compress(raw)).decode()}}


def data_message(stream: str, events: list[tuple[str, int, str]]) -> dict:
    return subscription_event(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": GROUP,
            "logStream": stream,
            "subscriptionFilters": ["lablink"],
            "logEvents": [{"id": i, "timestamp": ts, "message": m} for i, ts, m in events],
        }
    )


@pytest.fixture
def process(monkeypatch, pooled_database_url):
    monkeypatch.setenv("DATABASE_URL", pooled_database_url)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "LabLinkTest")
    handler = load_function("log_processor").handler
    yield lambda event: handler(event, LambdaContext("log_processor"))
    runtime.close_databases()


def events(n: int, start: int = 0, prefix: str = "line") -> list[tuple[str, int, str]]:
    return [(f"{36000000000000000000000000000000000000000000000000000000 + i}", 1_700_000_000_000 + i, f"{prefix} {i}") for i in range(start, start + n)]


def test_batch_delivered_three_times_is_stored_once(process, db):
    stream = launched_vm(db, VM)
    batch = data_message(stream, events(5))
    results = [process(batch) for _ in range(3)]
    assert [r["stored"] for r in results] == [5, 0, 0]
    assert results[2]["duplicates"] == 5
    assert log_event_count(db, VM) == 5
    assert db.logs.get_text(VM) == "\n".join(f"line {i}" for i in range(5))


def test_log_lines_are_in_time_order_with_one_utc_time_each(process, db):
    """What the dashboard's log viewer shows: a later batch may carry earlier events (two
    writers on the VM); each line gets the event's time in ISO 8601 UTC, and the time the
    agent wrote at its head (local, no zone) is not repeated."""
    stream = launched_vm(db, VM)
    process(data_message(stream, [("3600000000000000000000000000000000000000000000000000010", 1_700_000_002_000, "2023-11-14 22:13:22,000 lablink-agent INFO MainThread: ready")]))
    process(data_message(stream, [("3600000000000000000000000000000000000000000000000000011", 1_700_000_001_000, "cloud-init: boot done")]))
    assert log_lines(db, VM) == [
        {"at": "2023-11-14T22:13:21Z", "message": "cloud-init: boot done"},
        {"at": "2023-11-14T22:13:22Z", "message": "lablink-agent INFO MainThread: ready"},
    ]


def test_logs_text_holds_the_newest_events(process, db):
    stream = launched_vm(db, VM)
    process(data_message(stream, events(3)))
    process(data_message(stream, events(2, start=3)))
    assert db.logs.get_text(VM).splitlines() == [f"line {i}" for i in range(5)]


def test_control_message_is_acknowledged_and_ignored(process, db):
    answer = process(subscription_event({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
                                         "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination"}]}))
    assert answer["status"] == "ok" and answer["messageType"] == "CONTROL_MESSAGE"
    assert log_event_count(db) == 0


def test_unknown_stream_is_kept_aside(process, db):
    answer = process(data_message("lablink-vm-test-404", events(4)))
    assert answer["status"] == "ok" and answer["vm_known"] is False and answer["stored"] == 4
    assert log_event_count(db, "lablink-vm-test-404") == 4
    stream = launched_vm(db, VM)
    assert process(data_message(stream, events(1, start=10)))["vm_known"] is True


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"awslogs": {}},
        {"awslogs": {"data": "!!! not base64 !!!"}},
        {"awslogs": {"data": base64.b64encode(b"not gzip").decode()}},
        subscription_event(b"not json"),
        subscription_event(b"[1, 2]"),
        subscription_event({"messageType": "DATA_MESSAGE", "logGroup": GROUP, "logStream": VM}),
        subscription_event({"messageType": "SOMETHING", "logGroup": GROUP, "logStream": VM, "logEvents": []}),
        subscription_event({"messageType": "DATA_MESSAGE", "logGroup": GROUP, "logStream": "", "logEvents": []}),
        subscription_event({"messageType": "DATA_MESSAGE", "logGroup": GROUP, "logStream": VM, "logEvents": [{"id": "1", "message": "no time"}]}),
    ],
    ids=["empty", "no data", "not base64", "not gzip", "not json", "not an object", "no events", "unknown type", "no stream", "event without time"],
)
def test_malformed_payload_is_reported_not_stored(process, db, event, capfd, caplog):
    answer = process(event)
    assert answer["status"] == "rejected" and answer["error"]
    assert log_event_count(db) == 0
    assert any(r.getMessage() == "malformed log subscription payload" and r.levelname == "ERROR" for r in caplog.records)
    assert '"LogBatchesRejected"' in capfd.readouterr().out


def test_ten_thousand_event_batch(process, db):
    stream = launched_vm(db, VM)
    answer = process(data_message(stream, events(10_000)))
    assert answer["stored"] == 10_000
    assert log_event_count(db, VM) == 10_000
    logs = db.logs.get_text(VM)
    assert logs.endswith("line 9999") and len(logs) <= 64 * 1024
    assert process(data_message(stream, events(10_000)))["stored"] == 0


def test_metrics_are_emitted(process, db, capfd):
    stream = launched_vm(db, VM)
    process(data_message(stream, events(3)))
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("LogEventsIngested") == [3.0] or doc.get("LogEventsIngested") == 3.0 for doc in emf), emf


def test_a_database_outage_fails_the_batch_so_lambda_retries_it(monkeypatch, process, db):
    """Not dropped: the handler raises, so Lambda retries the asynchronous invocation and then
    hands the batch to the dead-letter queue (stacks/logs.py); once the database is back the
    same batch is stored."""
    stream = launched_vm(db, VM)
    batch = data_message(stream, events(3))
    with socket.socket() as closed, monkeypatch.context() as outage:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        outage.setenv("DATABASE_URL", f"postgresql://lablink@127.0.0.1:{closed.getsockname()[1]}/lablink")
        with pytest.raises(DatabaseUnreachable):
            process(batch)
    assert log_event_count(db, VM) == 0
    assert process(batch)["stored"] == 3
