"""Soak: the local stack under steady work for a long while, its memory and its database
connections watched. The API gateway runs in a process of its own, so its memory is its own.

The steady work, through the real API: the admin launches VMs while the fleet is below its
size and destroys VMs that have been assigned a while; researchers ask for the free ones
(each VM's agent runs their command); the VMs post telemetry with their own tokens (status,
GPU health, in-use, startup metrics); VM log files grow and are shipped and subscribed; the
admin dashboard and its JSON are read.

Sampled every --sample seconds: resident memory (RSS) of the listener and of the gateway,
and the database connections the processes hold (pg_stat_activity, counting the functions'
connections to the pooler instead of the pooler's own to the server: those stay open up to its
pool size once a busy moment made them, a leak or not). After a warm-up (the first
--warmup fraction of the run), the second half must not be above the first: memory within
max(--rss-slack-mb, 10 %), connections at most one above the first half's (the one a
provisioning step holds while it runs).

Last line: one JSON object with the samples' summary, the work done and the violations.

    .venv/bin/python -m tests.reliability.soak [--seconds 1800] [--fleet 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink_cli.client import AdminClient, ApiCallFailed
from lablink_local.pgbouncer import pool_connections
from tests.support.db_probe import session_count
from tests.support.proof_stack import ProofStack, rss_mb

CRD_COMMAND = (
    'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Asoak-{n}" '
    '--redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
)


class Work:
    """The steady work, one kind per thread, each at its own pace."""

    def __init__(self, stack: ProofStack, db: Database, fleet: int, hold_seconds: float, rng: random.Random):
        self.stack, self.db, self.fleet, self.hold_seconds, self.rng = stack, db, fleet, hold_seconds, rng
        self.admin = AdminClient(stack.api_url, "admin", stack.admin_password, timeout=60)
        self.stopped = threading.Event()
        self.done: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.assigned_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.researchers = 0

    def every(self, seconds: float, name: str, action) -> threading.Thread:
        def loop():
            while not self.stopped.wait(seconds * self.rng.uniform(0.7, 1.3)):
                try:
                    action()
                except (ApiCallFailed, OSError, urllib.error.URLError) as error:
                    self.errors[f"{name}: {getattr(error, 'status', None) or type(error).__name__}"] += 1

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread

    # -- the kinds of work ------------------------------------------------------------------

    def launch(self) -> None:
        live = sum(n for status, n in self.admin.status().items() if status != "terminated")
        if live < self.fleet:
            self.admin.launch(min(4, self.fleet - live))
            self.done["launches"] += 1

    def request(self) -> None:
        if self.admin.free_count() == 0:
            return
        with self.lock:
            self.researchers += 1
            n = self.researchers
        try:
            answer = self.admin.request_vm(f"soak{n}@example.org", CRD_COMMAND.format(n=n))
        except ApiCallFailed as error:
            if error.status == 503:  # taken by nobody else: freed by a destroy meanwhile
                self.done["requests_refused"] += 1
                return
            raise
        with self.lock:
            self.assigned_at[answer["hostname"]] = time.monotonic()
        self.done["assignments"] += 1

    def destroy(self) -> None:
        now = time.monotonic()
        with self.lock:
            old = [h for h, at in self.assigned_at.items() if now - at > self.hold_seconds]
            for hostname in old:
                del self.assigned_at[hostname]
        if old:
            self.admin.destroy(old)
            self.done["destroyed"] += len(old)

    def telemetry(self) -> None:
        """One VM posts what its agent posts, with its own token (read from its settings)."""
        vms = [vm for vm in list(self.stack.simulator.vms.values()) if (vm.directory / "agent.json").exists()]
        if not vms:
            return
        vm = self.rng.choice(vms)
        settings = json.loads((vm.directory / "agent.json").read_text())
        now = time.time()
        route, body = self.rng.choice(
            [
                ("/api/gpu_health", {"hostname": vm.hostname, "gpu_status": self.rng.choice(["Healthy", "N/A"])}),
                ("/api/update_inuse_status", {"hostname": vm.hostname, "status": self.rng.random() < 0.5}),
                (f"/api/vm-metrics/{vm.hostname}", {"cloud_init_start": now - 3, "cloud_init_end": now - 1}),
            ]
        )
        request = urllib.request.Request(
            self.stack.api_url + route, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {settings['token']}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                self.done["telemetry_posts"] += 1
        except urllib.error.HTTPError as error:
            # 401 (its token is gone) or 404 are right for a VM destroyed a moment ago.
            if error.code not in (401, 404) or self.db.vms.exists(vm.hostname):
                raise ApiCallFailed(str(error), error.code) from None
            self.done["telemetry_of_destroyed_vms_refused"] += 1

    def log_lines(self) -> None:
        for vm in list(self.stack.simulator.vms.values()):
            if vm.boot_log.exists():
                with open(vm.boot_log, "a") as out:
                    out.write(f"{time.strftime('%H:%M:%S')} soak: a steady line of the VM's log\n")
                self.done["log_lines"] += 1

    def dashboard(self) -> None:
        self.admin.vms()
        self.admin.status()
        self.admin.call("GET", "/admin")
        self.done["dashboard_reads"] += 1


def growth(samples: list[dict], key: str, warmup: float) -> tuple[float, float, float]:
    """(first half's median, second half's median, second half's peak) after the warm-up."""
    kept = samples[int(len(samples) * warmup) :]
    half = len(kept) // 2
    first, second = [s[key] for s in kept[:half]], [s[key] for s in kept[half:]]
    return statistics.median(first), statistics.median(second), max(second)


def held_connections(db: Database) -> int:
    """The connections to the stack's database held by its processes: the direct ones (the
    listener, this observer) and the functions' clients of the pooler (whose URL the stack
    gave the functions in this process's environment)."""
    clients, servers = pool_connections(os.environ["DATABASE_URL"])
    return session_count(db, "") - servers + clients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--fleet", type=int, default=20, help="VMs kept alive at a time")
    parser.add_argument("--hold", type=float, default=None, help="seconds a VM stays assigned before it is destroyed")
    parser.add_argument("--sample", type=float, default=None, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.25, help="fraction of the run not judged")
    parser.add_argument("--rss-slack-mb", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    hold = args.hold if args.hold is not None else min(60.0, max(10.0, args.seconds / 10))
    sample_every = args.sample if args.sample is not None else max(2.0, min(15.0, args.seconds / 60))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:7.1f} s] {text}", flush=True)

    config = LablinkConfig.model_validate({"fleet": {"max_vms": args.fleet + 8}})
    stack = ProofStack(config, gateway_process=True, boot_seconds=1.0, log_interval=1.0)
    say(f"seed {seed}: starting the local stack (gateway in its own process)")
    stack.start()
    db = Database(stack.database_url, config.db, actor="soak-observer")
    work = Work(stack, db, args.fleet, hold, random.Random(seed))
    samples: list[dict] = []
    try:
        threads = [
            work.every(5.0, "launch", work.launch),
            work.every(1.0, "request", work.request),
            work.every(3.0, "destroy", work.destroy),
            work.every(0.25, "telemetry", work.telemetry),
            work.every(1.0, "logs", work.log_lines),
            work.every(5.0, "dashboard", work.dashboard),
        ]
        end = began + args.seconds
        while time.monotonic() < end:
            time.sleep(min(sample_every, max(0.0, end - time.monotonic())))
            listener = stack.listener_pid()
            sample = {
                "t": round(time.monotonic() - began, 1),
                "listener_rss_mb": round(rss_mb(listener), 1) if listener else None,
                "gateway_rss_mb": round(rss_mb(stack.gateway.pid), 1),
                "db_connections": held_connections(db),
                "vms": len(stack.simulator.vms),
            }
            samples.append(sample)
            say(json.dumps(sample) + f" work={dict(work.done)}")
        work.stopped.set()
        for thread in threads:
            thread.join(60)
    finally:
        work.stopped.set()
        db.close()
        stack.stop()

    violations = []
    summary = {}
    for key, slack in (("listener_rss_mb", args.rss_slack_mb), ("gateway_rss_mb", args.rss_slack_mb), ("db_connections", 0)):
        first, second, peak = growth(samples, key, args.warmup)
        kept = samples[int(len(samples) * args.warmup) :]
        first_peak = max(s[key] for s in kept[: len(kept) // 2])
        summary[key] = {"first_half_median": first, "second_half_median": second, "second_half_peak": peak,
                        "first_half_peak": first_peak, "start": samples[0][key], "end": samples[-1][key]}
        if key == "db_connections":
            # One above the first half's peak is a provisioning step's own connection, open
            # while it runs; a leak grows with the work done.
            if peak > first_peak + 1 or second > first + 1:
                violations.append(f"database connections grew: {first} (peak {first_peak}) in the first half, {second} (peak {peak}) in the second")
        elif second > first + max(slack, 0.10 * first):
            violations.append(f"{key} grew: median {first} MB in the first half, {second} MB in the second")
    errors = dict(work.errors)
    if sum(errors.values()) > 0:
        violations.append(f"requests failed during the soak: {errors}")
    for kind in ("launches", "assignments", "destroyed", "telemetry_posts", "log_lines", "dashboard_reads"):
        if not work.done[kind]:
            violations.append(f"no {kind} happened: the soak did not exercise everything")
    result = {
        "seconds": args.seconds,
        "fleet": args.fleet,
        "samples": len(samples),
        "sample_every_s": sample_every,
        "seed": seed,
        **summary,
        "work": dict(work.done),
        "errors": errors,
        "violations": violations,
        "series": samples,
    }
    for violation in violations:
        print("VIOLATION:", violation)
    print(json.dumps(result))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
