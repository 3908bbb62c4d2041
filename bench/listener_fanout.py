"""Listener fan-out: W VMs long-poll one listener process, then K assignments are committed
within one second; each VM's answer is timed from its assignment's commit.

The listener runs in its own process (`python -m lablink_listener`, as in the container);
the waiting VMs are asyncio HTTP clients spread over a few processes; the assignments are
made by the real Database.assignments.claim (so the real trigger notifies) in another. Prints a human
summary, then, as its last line, one JSON object: waiters, assigned, delivered, p50/p99/max
latency from commit to the client's full response, listener RSS, and the database
connections the listener holds beside what the original design would hold (one per waiter).

    .venv/bin/python -m bench.listener_fanout [--waiters 10000] [--assignments 1000] [--heartbeat 20]

Uses DATABASE_URL's server when set, else starts a throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

from lablink.db.database import Database
from lablink.tokens import hash_token, mint_token
from lablink_listener.settings import LISTEN_APPLICATION_NAME, QUERY_APPLICATION_NAME
from lablink_local.postgres import create_migrated_database, database_server, drop_database, free_port
from tests.support.db_probe import row_count, session_count

COMMAND = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Ab-bench-{i}" --name=$(hostname)'
# Requests whose headers have not arrived yet: bounds the connect burst (the listen backlog).
CONNECTING_AT_ONCE = 500
DELIVERY_TIMEOUT = 60.0
IDLE_SAMPLE_SECONDS = 5.0


def raise_file_limit(needed: int) -> int:
    """Each waiter is one socket here and one in the listener (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"the hard limit on open files is {hard}; {needed} are needed (ulimit -Hn)")
    target = needed if hard == resource.RLIM_INFINITY else max(soft, min(hard, needed))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_wake_times(log_path: Path) -> dict[str, float]:
    """hostname -> when the listener woke its waiters (epoch seconds, from its JSON log)."""
    woken = {}
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "assignment delivered":
            woken[entry["hostname"]] = datetime.fromisoformat(entry["time"]).timestamp()
    return woken


def assign_paced(url: str, count: int, seconds: float, connections: int, results) -> None:
    """(In its own process.) Make ``count`` assignments evenly over ``seconds``, from
    ``connections`` threads (one Database each, as concurrent researcher requests would be);
    send back (hostname, pin, started, finished, started wall-clock time) for each. ``started`` is taken just before
    the statement, so a latency measured from it is an upper bound of commit-to-answer."""
    out = []
    begin = time.monotonic() + 0.2

    def worker(first: int) -> None:
        db = Database(url, actor="bench-assigner")
        row_count(db)  # connect before the clock starts
        for i in range(first, count, connections):
            delay = begin + i * seconds / count - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.monotonic()  # CLOCK_MONOTONIC is system-wide on Linux: comparable across processes
            wall = time.time()  # for the listener's log timestamps
            assignment = db.assignments.claim(f"researcher{i}@example.org", COMMAND.format(i=i))
            out.append((assignment.hostname, assignment.pin, started, time.monotonic(), wall))
        db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.send(sorted(out, key=lambda made: made[2]))


class Clients:
    """Waiting VMs: one POST /vm_startup each (heartbeat mode), read to the end."""

    def __init__(self, url: str, tokens: dict[str, str], connecting_at_once: int, waiting, answered, failed):
        self.url = url
        self.tokens = tokens
        self.answers: dict[str, tuple[float, bytes]] = {}
        self.failures: list[str] = []
        self._connecting = asyncio.Semaphore(connecting_at_once)
        self._counters = waiting, answered, failed

    @staticmethod
    def _count(counter) -> None:
        with counter.get_lock():
            counter.value += 1

    async def _wait(self, session: aiohttp.ClientSession, hostname: str, token: str) -> None:
        waiting, answered, failed = self._counters
        try:
            async with self._connecting:
                response = await session.post(
                    self.url + "/vm_startup", json={"hostname": hostname}, headers={"Authorization": f"Bearer {token}"}
                )
            if response.status != 200:
                raise aiohttp.ClientError(f"HTTP {response.status}")
            self._count(waiting)
            body = await response.read()
            self.answers[hostname] = (time.monotonic(), body)
            self._count(answered)
            response.release()
        except (aiohttp.ClientError, OSError) as error:
            self.failures.append(f"{hostname}: {error!r}")
            self._count(failed)

    async def run(self, measuring, stop) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [asyncio.create_task(self._wait(session, h, t)) for h, t in self.tokens.items()]
            await asyncio.to_thread(measuring.wait)
            # The measuring side must not pause: a full collection over thousands of client
            # connections takes hundreds of ms, which would be charged to the listener.
            gc.collect()
            gc.freeze()
            gc.disable()
            await asyncio.to_thread(stop.wait)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def run_clients(url, tokens, connecting_at_once, counters, measuring, stop, results) -> None:
    """(In its own process.) Wait as the given VMs until ``stop``; send back the answers."""
    clients = Clients(url, tokens, connecting_at_once, *counters)
    asyncio.run(clients.run(measuring, stop))
    results.send((clients.answers, clients.failures[:5]))


def healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError:
        return 0, {}


def until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure(args, url: str, listener: subprocess.Popen, port: int, tokens: dict[str, str], log_path: Path) -> dict:
    base = f"http://127.0.0.1:{port}"
    db = Database(url, actor="bench-observer")
    if not until(lambda: healthz(base)[0] == 200, 30):
        raise SystemExit("the listener did not become healthy")

    # The VMs are spread over a few client processes (they are thousands of machines in
    # reality): one process alone would measure its own backlog, not the listener's.
    spawn = multiprocessing.get_context("spawn")
    counters = tuple(spawn.Value("i", 0) for _ in range(3))  # waiting, answered, failed
    measuring, stop = spawn.Event(), spawn.Event()
    hostnames = list(tokens)
    workers = []
    for n in range(args.client_processes):
        receiver, sender = spawn.Pipe(duplex=False)
        share = {h: tokens[h] for h in hostnames[n :: args.client_processes]}
        process = spawn.Process(
            target=run_clients,
            args=(base, share, CONNECTING_AT_ONCE // args.client_processes, counters, measuring, stop, sender),
        )
        workers.append((process, receiver))
    began = time.monotonic()
    cpu_before = cpu_seconds(listener.pid)
    for process, _ in workers:
        process.start()
    until(lambda: healthz(base)[1].get("waiters") == args.waiters or counters[2].value > 0, 600, 0.2)
    connect_seconds = time.monotonic() - began
    connect_cpu = cpu_seconds(listener.pid) - cpu_before
    health = healthz(base)[1]
    print(
        f"{health.get('waiters')} VMs waiting after {connect_seconds:.1f} s ({counters[2].value} failed); "
        f"listener CPU meanwhile {connect_cpu:.1f} s"
    )
    listen_connections = session_count(db, LISTEN_APPLICATION_NAME) - session_count(db, QUERY_APPLICATION_NAME)
    listener_connections = session_count(db, LISTEN_APPLICATION_NAME)
    rss_waiting, _ = rss_mb(listener.pid)

    measuring.set()
    time.sleep(0.5)  # the clients settle (collect, freeze)
    # Before any assignment: what holding W waiters costs (heartbeats), and whether the
    # listener's loop is keeping up (a /healthz round trip).
    cpu_idle_before = cpu_seconds(listener.pid)
    time.sleep(IDLE_SAMPLE_SECONDS)
    idle_cpu_percent = 100 * (cpu_seconds(listener.pid) - cpu_idle_before) / IDLE_SAMPLE_SECONDS
    asked = time.monotonic()
    healthz(base)
    healthz_ms = (time.monotonic() - asked) * 1000
    print(
        f"holding {args.waiters} waiters: listener CPU {idle_cpu_percent:.0f}% of a core, /healthz in {healthz_ms:.1f} ms"
    )
    receiver, sender = spawn.Pipe(duplex=False)
    assigner = spawn.Process(
        target=assign_paced, args=(url, args.assignments, args.assign_seconds, args.assign_connections, sender)
    )
    cpu_before_assigning = cpu_seconds(listener.pid)
    assigner.start()
    made = receiver.recv()
    assigner.join()
    assigned = {hostname: (pin, started) for hostname, pin, started, _, _ in made}
    assigned_wall = {hostname: wall for hostname, *_, wall in made}
    assign_span = max(made_row[3] for made_row in made) - made[0][2]
    print(f"{len(made)} assignments committed in {assign_span:.3f} s")

    until(lambda: counters[1].value >= len(assigned), DELIVERY_TIMEOUT, 0.01)
    delivery_cpu = cpu_seconds(listener.pid) - cpu_before_assigning
    time.sleep(0.5)  # anything woken by mistake shows up meanwhile
    listener_connections = max(listener_connections, session_count(db, LISTEN_APPLICATION_NAME))
    rss_now, rss_peak = rss_mb(listener.pid)
    stop.set()
    answers: dict[str, tuple[float, bytes]] = {}
    failures: list[str] = []
    for process, receiver in workers:
        their_answers, their_failures = receiver.recv()
        answers.update(their_answers)
        failures += their_failures
        process.join()
    if failures:
        print("first failures:", failures[:5])
    db.close()

    latencies = []
    delivered = 0
    for hostname, (pin, started) in assigned.items():
        if hostname not in answers:
            continue
        at, body = answers[hostname]
        answer = json.loads(body)
        if answer == {"status": "success", "pin": pin, "command": answer.get("command")} and answer["command"]:
            delivered += 1
            latencies.append((at - started) * 1000)
    wrongly_woken = sum(1 for hostname in answers if hostname not in assigned)
    # The listener's share: from the commit to the moment it woke the waiter (its log).
    woken = listener_wake_times(log_path)
    listener_latencies = [(woken[h] - wall) * 1000 for h, wall in assigned_wall.items() if h in woken]

    return {
        "waiters": args.waiters,
        "waiting": health.get("waiters"),
        "assigned": len(assigned),
        "delivered": delivered,
        "wrongly_woken": wrongly_woken,
        "assign_seconds": round(assign_span, 3),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "listener_p50_ms": round(statistics.median(listener_latencies), 1) if listener_latencies else None,
        "listener_p99_ms": round(percentile(listener_latencies, 0.99), 1) if listener_latencies else None,
        "listener_rss_mb": round(rss_now, 1),
        "listener_rss_waiting_mb": round(rss_waiting, 1),
        "listener_peak_rss_mb": round(rss_peak, 1),
        "listen_connections": listen_connections,
        "listener_db_connections": listener_connections,
        "original_design_db_connections": args.waiters,
        "connect_seconds": round(connect_seconds, 1),
        "connect_listener_cpu_seconds": round(connect_cpu, 1),
        "delivery_listener_cpu_seconds": round(delivery_cpu, 2),
        "idle_listener_cpu_percent": round(idle_cpu_percent, 1),
        "healthz_ms_before_assigning": round(healthz_ms, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "heartbeat_seconds": args.heartbeat,
        "listener_nice": args.listener_nice,
    }


def insert_vms(url: str, count: int) -> dict[str, str]:
    db = Database(url, actor="bench-setup")
    tokens = {}
    for i in range(count):
        hostname = f"lablink-vm-bench-{i}"
        tokens[hostname] = mint_token()
        db.vms.insert(hostname, status="running", token_hash=hash_token(tokens[hostname]))
    db.close()
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--assignments", type=int, default=1_000)
    parser.add_argument("--assign-seconds", type=float, default=1.0, help="the assignments are spread over this time")
    parser.add_argument("--client-processes", type=int, default=4, help="processes the waiting VMs are spread over")
    parser.add_argument("--assign-connections", type=int, default=4, help="concurrent assigning connections")
    parser.add_argument(
        "--listener-python", default=sys.executable, help="the interpreter that runs the listener (e.g. the image's)"
    )
    parser.add_argument("--heartbeat", type=float, default=20.0, help="the listener's heartbeat interval")
    parser.add_argument(
        "--listener-nice",
        type=int,
        default=0,
        help="scheduling priority of the listener (e.g. -10, as root): on a shared machine, stands in for "
        "the dedicated vCPU the listener has in its Fargate task",
    )
    args = parser.parse_args()
    if not 0 < args.assignments <= args.waiters:
        parser.error("--assignments must be between 1 and --waiters")
    files = raise_file_limit(args.waiters + 1024)
    print(f"open files limit: {files}")

    with database_server() as admin_url, tempfile.TemporaryDirectory(prefix="lablink-fanout-") as workdir:
        name = f"lablink_bench_{uuid.uuid4().hex[:8]}"
        url = create_migrated_database(admin_url, name)
        listener = None
        try:
            started = time.monotonic()
            tokens = insert_vms(url, args.waiters)
            print(f"{args.waiters} VMs inserted in {time.monotonic() - started:.1f} s")
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "LISTENER_PORT": str(port),
                "LABLINK_CONFIG_JSON": json.dumps({"listener": {"heartbeat_seconds": args.heartbeat}}),
            }
            log_path = Path(workdir) / "listener.log"
            with open(log_path, "w") as log:
                listener = subprocess.Popen(
                    [args.listener_python, "-m", "lablink_listener"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, args.listener_nice),
                )
            result = measure(args, url, listener, port, tokens, log_path)
        finally:
            if listener is not None:
                listener.send_signal(signal.SIGTERM)
                try:
                    listener.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    listener.kill()
            drop_database(admin_url, name)
    print(
        f"delivered {result['delivered']}/{result['assigned']} (wrongly woken: {result['wrongly_woken']}); "
        f"latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"(commit to listener wake-up: p50 {result['listener_p50_ms']} ms, p99 {result['listener_p99_ms']} ms); "
        f"listener RSS {result['listener_rss_mb']} MB (peak {result['listener_peak_rss_mb']} MB); "
        f"DB connections: {result['listener_db_connections']} ({result['listen_connections']} LISTEN) "
        f"vs {result['original_design_db_connections']} in the original design"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
