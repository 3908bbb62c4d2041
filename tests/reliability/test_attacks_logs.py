"""Issue 12 item 10, VM logs: what one VM can do to the log store through its own instance
role credentials (it can create and write any stream of the client log group; IAM cannot
scope a stream per instance, see lablink/logs.py) -- and what the system does about it.

Driven through the real log-processor handler on real subscription batches, as CloudWatch
Logs delivers them, against a real PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from db_probe import age_log_events, launched_vm, log_event_count

from lablink import environment, runtime
from lablink_local.gateway import LambdaContext, load_function

GROUP = "/lablink/test/client"
VICTIM, ATTACKER = "lablink-vm-test-1", "lablink-vm-test-2"
# Small bounds so that the tests stay fast; the defaults are in lablink/config.py.
LIMITS = {
    "max_events_per_window": 800,
    "max_bytes_per_window": 1_000_000,
    "keep_events_per_vm": 500,
    "keep_unknown_events": 500,
}


def batch(stream: str, messages: list[str], first_id: int = 0) -> dict:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": GROUP,
        "logStream": stream,
        "subscriptionFilters": ["lablink"],
        "logEvents": [
            {"id": f"{first_id + i:056d}", "timestamp": 1_700_000_000_000 + first_id + i, "message": m}
            for i, m in enumerate(messages)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


@pytest.fixture
def process(monkeypatch, pooled_database_url):
    monkeypatch.setenv("DATABASE_URL", pooled_database_url)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "LabLinkTest")
    monkeypatch.setenv(environment.CONFIG_JSON, json.dumps({"logs": LIMITS}))
    handler = load_function("log_processor").handler
    yield lambda event: handler(event, LambdaContext("log_processor"))
    runtime.close_databases()


def test_a_vm_cannot_write_into_another_vms_logs(process, db):
    victim_stream = launched_vm(db, VICTIM)
    attacker_stream = launched_vm(db, ATTACKER)
    process(batch(victim_stream, ["victim: honest line"]))
    # The attacker knows the victim's hostname, its own stream's shape and its own token;
    # it writes under every name it can make up for the victim.
    forged_streams = [VICTIM, f"{VICTIM}.{attacker_stream.rsplit('.', 1)[1]}", f"{VICTIM}.{'0' * 32}"]
    answers = [
        process(batch(stream, ["FORGED: your CRD code expired, visit evil.example"], first_id=100 + n))
        for n, stream in enumerate(forged_streams)
    ]

    assert "FORGED" not in db.logs.get_text(VICTIM)
    assert db.logs.get_text(VICTIM) == "victim: honest line"
    # Kept aside, counted (the handler's LogEventsOfUnknownStreams metric), never the victim's.
    assert [(a["vm_known"], a["stored"]) for a in answers] == [(False, 1)] * 3


def test_a_flooding_vm_stores_at_most_its_cap_and_the_overflow_is_counted(process, db):
    stream = launched_vm(db, ATTACKER)
    flood = [f"flood {i}" for i in range(2_000)]
    answers = [process(batch(stream, flood[start : start + 250], first_id=start)) for start in range(0, 2_000, 250)]

    assert sum(a["stored"] for a in answers) == LIMITS["max_events_per_window"]
    assert sum(a["dropped"] for a in answers) == 2_000 - LIMITS["max_events_per_window"]
    # What stays is bounded by the per-VM count besides.
    assert log_event_count(db, ATTACKER) == LIMITS["keep_events_per_vm"]
    # The admin sees the overflow beside the VM's logs.
    assert db.logs.get_ingest(ATTACKER).dropped_events == 1_200


def test_old_events_are_pruned_by_age_and_each_vm_keeps_at_most_its_count(process, db):
    stream = launched_vm(db, VICTIM)
    process(batch(stream, [f"old {i}" for i in range(100)]))
    age_log_events(db, VICTIM, days=LIMITS.get("max_age_days", 30) + 1)
    for start in range(100, 700, 200):
        process(batch(stream, [f"new {i}" for i in range(start, start + 200)], first_id=start))

    assert log_event_count(db, VICTIM) == LIMITS["keep_events_per_vm"]
    text = db.logs.get_text(VICTIM)
    assert "old " not in text and text.splitlines()[-1] == "new 699"


def test_forged_streams_kept_aside_are_bounded(process, db):
    for n in range(4):
        process(batch(f"made-up-stream-{n}", [f"junk {i}" for i in range(200)], first_id=n * 1_000))
    assert log_event_count(db) == LIMITS["keep_unknown_events"]
