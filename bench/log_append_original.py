"""The original LabLink's log append on the same work as bench/log_ingest.py, beside this
project's: the seed read the VM's whole Logs column, appended the batch's lines and wrote it
all back (POST /api/vm-logs: get_vm_logs + concat + save_logs_by_hostname).

Three measures, each for the original and for this project's Database.logs.append:
- rate: 10,000-event batches into an empty VM, and into a VM that already holds --history
  events (the original's column holds them as text; ours holds them as rows);
- concurrency: --writers deliveries at once for one VM (CloudWatch invokes the subscribed
  Lambda concurrently), each of distinct events: how many lines were lost;
- redelivery: every batch delivered twice (subscriptions deliver at least once): how many
  lines were stored twice.

Last line: one JSON object. Uses DATABASE_URL's server when set, else a throwaway PostgreSQL.

    .venv/bin/python -m bench.log_append_original [--history 1000000] [--batches 5] [--writers 4]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import psycopg2

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink.models import LogEvent
from lablink_local.postgres import create_migrated_database, database_server, drop_database
from tests.support.db_probe import log_event_count

BATCH = 10_000
HOST = "lablink-vm-bench-1"
GROUP = "/lablink/bench"


def events(first: int, count: int) -> list[LogEvent]:
    return [LogEvent(f"{first + i:056d}", 1_700_000_000_000 + (first % 10**9) + i, f"[{first + i}] cloud-init: step {i % 97} done, all good") for i in range(count)]


class Original:
    """The seed's append, as it ran (autocommit, no lock). Kept here, outside the data
    layer, only as the baseline being measured."""

    def __init__(self, url: str):
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True

    def append(self, batch: list[LogEvent]) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT logs FROM vms WHERE hostname = %s", (HOST,))
            current = cur.fetchone()[0] or ""
            cur.execute("UPDATE vms SET logs = %s WHERE hostname = %s", (current + "\n".join(e.message for e in batch) + "\n", HOST))

    def lines(self) -> list[str]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT logs FROM vms WHERE hostname = %s", (HOST,))
            return [line for line in (cur.fetchone()[0] or "").split("\n") if line]

    def close(self) -> None:
        self.conn.close()


class Ours:
    def __init__(self, url: str):
        self.db = Database(url, DbConfig(), actor="bench")
        self.url = url

    def append(self, batch: list[LogEvent]) -> None:
        self.db.logs.append(GROUP, HOST, batch)

    def lines(self) -> list[str]:
        return [str(n) for n in range(log_event_count(self.db, HOST))]

    def close(self) -> None:
        self.db.close()


def fresh(admin_url: str) -> tuple[str, str]:
    name = f"lablink_bench_{uuid.uuid4().hex[:8]}"
    url = create_migrated_database(admin_url, name)
    setup = Database(url, DbConfig(), actor="bench-setup")
    setup.vms.insert(HOST, status="running")
    setup.close()
    return name, url


def seed(kind, url: str, history: int) -> None:
    writer = kind(url)
    if kind is Original:
        # The column as the original would have grown it, written at once (the growing is not measured).
        with writer.conn.cursor() as cur:
            text = "".join(f"history line {i}\n" for i in range(history))
            cur.execute("UPDATE vms SET logs = %s WHERE hostname = %s", (text, HOST))
    else:
        for first in range(0, history, BATCH):
            writer.append([LogEvent(f"{10**12 + first + i:056d}", 1_600_000_000_000 + first + i, f"history line {first + i}")
                           for i in range(min(BATCH, history - first))])
    writer.close()


def rate(kind, url: str, batches: int) -> float:
    writer = kind(url)
    seconds = []
    for b in range(batches):
        batch = events(10**15 + b * BATCH, BATCH)
        started = time.perf_counter()
        writer.append(batch)
        seconds.append(time.perf_counter() - started)
    writer.close()
    return round(BATCH / sorted(seconds)[len(seconds) // 2])


def concurrent_loss(kind, url: str, writers: int, rounds: int = 50, per_batch: int = 100) -> int:
    """Lines lost when ``writers`` deliveries of distinct events run at once, ``rounds`` times."""
    threads_writers = [kind(url) for _ in range(writers)]
    barrier = threading.Barrier(writers)

    def deliver(index: int, writer) -> None:
        for r in range(rounds):
            barrier.wait()
            writer.append(events(10**16 + (r * writers + index) * per_batch, per_batch))

    threads = [threading.Thread(target=deliver, args=(i, w)) for i, w in enumerate(threads_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = len(threads_writers[0].lines())
    for writer in threads_writers:
        writer.close()
    return writers * rounds * per_batch - stored


def doubled_by_redelivery(kind, url: str, batches: int = 20, per_batch: int = 100) -> int:
    writer = kind(url)
    for b in range(batches):
        batch = events(10**17 + b * per_batch, per_batch)
        writer.append(batch)
        writer.append(batch)  # the same batch delivered again
    stored = len(writer.lines())
    writer.close()
    return stored - batches * per_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    result: dict = {"batch_events": BATCH, "history_events": args.history, "writers": args.writers}
    with database_server() as admin_url:
        for label, kind in (("lablink", Ours), ("original", Original)):
            figures = {}
            names = []
            try:
                name, url = fresh(admin_url)
                names.append(name)
                figures["empty_events_per_s"] = rate(kind, url, args.batches)
                name, url = fresh(admin_url)
                names.append(name)
                seed(kind, url, args.history)
                figures["with_history_events_per_s"] = rate(kind, url, args.batches)
                name, url = fresh(admin_url)
                names.append(name)
                figures["lines_lost_concurrent"] = concurrent_loss(kind, url, args.writers)
                figures["concurrent_lines_sent"] = args.writers * 50 * 100
                name, url = fresh(admin_url)
                names.append(name)
                figures["lines_doubled_by_redelivery"] = doubled_by_redelivery(kind, url)
            finally:
                for name in names:
                    drop_database(admin_url, name)
            result[label] = figures
            print(f"{label:>8}: {json.dumps(figures)}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
