"""The original LabLink's wait for an assignment, on the same work as bench/listener_fanout.py:
each waiting VM's POST /vm_startup held its own PostgreSQL connection, LISTENing on the
channel, in its own thread, looking at every notification for its hostname (the seed's
listen_for_notifications, kept here only as the baseline being measured).

W VMs try to wait; the connections are opened until the server refuses one (its
max_connections); then K assignments are committed within one second with the real
Database.assignments.claim, and each waiting VM's wake-up is timed from its assignment's commit.

Last line: one JSON object: waiters asked, waiting (connections held), refused, assigned,
delivered, undeliverable (assigned to a VM that could not wait), p50/p99/max latency,
notifications handled in all (each NOTIFY wakes every waiter), and the memory (PSS) of the
server processes serving the waiters.

    .venv/bin/python -m bench.fanout_original [--waiters 10000] [--assignments 1000]

Uses DATABASE_URL's server when set, else starts a throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions

from lablink.db.database import Database
from lablink_local.postgres import create_migrated_database, database_server, drop_database
from tests.support.db_probe import row_count

COMMAND = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Ab-bench-{i}" --name=$(hostname)'
CHANNEL = "vm_updates"


class Waiter(threading.Thread):
    def __init__(self, conn, hostname: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.conn, self.hostname, self.stop = conn, hostname, stop
        self.woken_at: float | None = None
        self.handled = 0

    def run(self) -> None:
        conn = self.conn
        while not self.stop.is_set():
            if select.select([conn], [], [], 1) == ([], [], []):
                continue
            conn.poll()
            while conn.notifies:
                notify = conn.notifies.pop(0)
                self.handled += 1
                payload = json.loads(notify.payload)
                if payload.get("HostName") == self.hostname and payload.get("CrdCommand"):
                    self.woken_at = time.monotonic()
                    return


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure(url: str, waiters: int, assignments: int, assign_seconds: float) -> dict:
    setup = Database(url, actor="bench-setup")
    for i in range(waiters):
        setup.vms.insert(f"lablink-vm-bench-{i}", status="running")
    assigner = Database(url, actor="bench-assigner")
    row_count(assigner)  # connected before the waiters take the slots
    observer = psycopg2.connect(url)
    observer.autocommit = True
    stop = threading.Event()
    threads: list[Waiter] = []
    refused_error = None
    started = time.monotonic()
    for i in range(waiters):
        try:
            conn = psycopg2.connect(url, application_name="original-waiter")
        except psycopg2.OperationalError as error:
            refused_error = str(error).strip().splitlines()[-1]
            break
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        conn.cursor().execute(f"LISTEN {CHANNEL};")  # noqa: S608 (a constant, as in the seed)
        waiter = Waiter(conn, f"lablink-vm-bench-{i}", stop)
        waiter.start()
        threads.append(waiter)
    connect_seconds = time.monotonic() - started
    waiting = len(threads)
    print(f"{waiting} of {waiters} VMs waiting ({waiters - waiting} refused: {refused_error})", flush=True)
    with observer.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'original-waiter'")
        memory = pss_mb([row[0] for row in cur.fetchall()])

    made = []
    begin = time.monotonic() + 0.05
    for i in range(assignments):
        delay = begin + i * assign_seconds / assignments - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        at = time.monotonic()
        made.append((assigner.assignments.claim(f"researcher{i}@example.org", COMMAND.format(i=i)).hostname, at))
    by_host = {t.hostname: t for t in threads}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(h in by_host and by_host[h].woken_at is None for h, _ in made):
        time.sleep(0.05)
    time.sleep(0.5)
    latencies = [(by_host[h].woken_at - at) * 1000 for h, at in made if h in by_host and by_host[h].woken_at]
    undeliverable = sum(1 for h, _ in made if h not in by_host)
    handled = sum(t.handled for t in threads)
    stop.set()
    for t in threads:
        t.join(5)
        t.conn.close()
    assigner.close()
    observer.close()
    setup.close()
    return {
        "waiters": waiters,
        "waiting": waiting,
        "refused": waiters - waiting,
        "refused_because": refused_error,
        "db_connections": waiting,
        "server_memory_for_waiters_mb": round(memory, 1),
        "assigned": len(made),
        "delivered": len(latencies),
        "undeliverable": undeliverable,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "notifications_handled": handled,
        "connect_seconds": round(connect_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--assignments", type=int, default=1_000)
    parser.add_argument("--assign-seconds", type=float, default=1.0)
    args = parser.parse_args()
    with database_server() as admin_url:
        name = f"lablink_bench_{uuid.uuid4().hex[:8]}"
        url = create_migrated_database(admin_url, name)
        try:
            result = measure(url, args.waiters, args.assignments, args.assign_seconds)
        finally:
            drop_database(admin_url, name)
    print(
        f"original design: {result['waiting']} waiting on {result['db_connections']} connections "
        f"({result['refused']} refused); delivered {result['delivered']}/{result['assigned']} "
        f"({result['undeliverable']} assigned to VMs that could not wait); p99 {result['p99_ms']} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
