"""Log ingestion rate: 10,000-event CloudWatch batches through the log-processor handler
(base64 + gzip decode, dedupe on event id, the VM's Logs tail refreshed) into a table that
already holds 1,000,000 events, and the same into an empty table: the cost of a batch must
not grow with the history. Last line: one JSON object. Target: >= 20,000 events/s.

    .venv/bin/python -m bench.log_ingest [--history 1000000] [--batches 5]

Uses DATABASE_URL's server when set, else starts a throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import sys
import time
import uuid

from tests.support.db_probe import launched_vm

BATCH = 10_000
HOSTS = 100
TARGET = 20_000
# The history is seeded whole (each of HOSTS VMs holds 10,000 events). The measured VM runs
# with the default pruning (keep_events_per_vm: from its third batch on, each batch also
# deletes as many old events as it stores) and an ingest window wide enough for the run.
UNBOUNDED = {"max_events_per_window": 10_000_000, "max_bytes_per_window": 10 * 1024**3, "keep_events_per_vm": 1_000_000}
MEASURED = {"max_events_per_window": 10_000_000, "max_bytes_per_window": 10 * 1024**3}


def subscription_event(stream: str, first_id: int, count: int) -> dict:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/lablink/bench",
        "logStream": stream,
        "subscriptionFilters": ["bench"],
        "logEvents": [
            {
                "id": f"{first_id + i:056d}",
                "timestamp": 1_700_000_000_000 + (first_id % 10**9) + i,
                "message": f"[{i}] cloud-init: step {i % 97} done, all good",
            }
            for i in range(count)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


def seed_history(url: str, events: int) -> float:
    """``events`` events spread over HOSTS VMs, stored through the repository; returns seconds."""
    from lablink.config import DbConfig, LogsConfig
    from lablink.db.database import Database
    from lablink.models import LogEvent

    limits = LogsConfig(**UNBOUNDED)
    db = Database(url, DbConfig(), actor="bench-seed")
    started = time.perf_counter()
    streams = [launched_vm(db, f"lablink-vm-hist-{h}", status="running") for h in range(HOSTS)]
    next_id = 10**12
    while next_id - 10**12 < events:
        stream = streams[(next_id // BATCH) % HOSTS]
        batch = [
            LogEvent(f"{next_id + i:056d}", 1_600_000_000_000 + (next_id - 10**12) + i, f"history line {i}")
            for i in range(min(BATCH, events - (next_id - 10**12)))
        ]
        db.logs.append("/lablink/bench", stream, batch, limits)
        next_id += len(batch)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def ingest_rate(url: str, batches: int) -> tuple[float, list[float]]:
    """Events per second through the handler (median batch), and each batch's seconds."""
    from lablink import environment, runtime

    os.environ["DATABASE_URL"] = url
    os.environ[environment.CONFIG_JSON] = json.dumps({"logs": MEASURED})
    from lablink_local.gateway import LambdaContext, load_function

    runtime.close_databases()
    handler = load_function("log_processor").handler
    stream = launched_vm(runtime.database("log-processor"), "lablink-vm-bench-1", status="running")
    events = [subscription_event(stream, 10**15 + b * BATCH, BATCH) for b in range(batches)]
    handler(subscription_event(stream, 10**16, 10), LambdaContext("log_processor"))  # warm: connection open
    seconds = []
    for event in events:
        started = time.perf_counter()
        result = handler(event, LambdaContext("log_processor"))
        seconds.append(time.perf_counter() - started)
        assert result["stored"] == BATCH, result
    runtime.close_databases()
    median = sorted(seconds)[len(seconds) // 2]
    return BATCH / median, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from lablink_local.postgres import create_migrated_database, database_server, drop_database

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)
    figures = {}
    with database_server() as admin_url:
        names = {
            "empty": f"lablink_bench_empty_{uuid.uuid4().hex[:8]}",
            "history": f"lablink_bench_hist_{uuid.uuid4().hex[:8]}",
        }
        try:
            empty_url = create_migrated_database(admin_url, names["empty"])
            rate, seconds = ingest_rate(empty_url, args.batches)
            figures["empty_table_events_per_s"] = round(rate)
            print(
                f"empty table:        {rate:9.0f} events/s (median of {args.batches} batches of {BATCH}; batches {', '.join(f'{s:.3f}' for s in seconds)} s)",
                flush=True,
            )

            history_url = create_migrated_database(admin_url, names["history"])
            seeded = seed_history(history_url, args.history)
            print(
                f"seeded {args.history} events in {seeded:.1f} s ({args.history / seeded:.0f} events/s through the repository)",
                flush=True,
            )
            rate, seconds = ingest_rate(history_url, args.batches)
            figures["history_events"] = args.history
            figures["with_history_events_per_s"] = round(rate)
            print(
                f"with {args.history} events: {rate:9.0f} events/s (median of {args.batches}; batches {', '.join(f'{s:.3f}' for s in seconds)} s)",
                flush=True,
            )
        finally:
            for name in names.values():
                drop_database(admin_url, name)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    figures["batch_events"] = BATCH
    figures["target_events_per_s"] = TARGET
    figures["history_over_empty"] = round(figures["with_history_events_per_s"] / figures["empty_table_events_per_s"], 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
