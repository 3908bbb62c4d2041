"""Fault injection, end to end on the local stack: an admin launches N VMs through the API;
while they boot (the real agent in each) and R researchers ask for one, PostgreSQL is
restarted, the listener is killed (SIGKILL) and started again, and client agents are killed
and started again, at random moments. Every log batch of the subscription is delivered three
times, out of order, and again after a failed delivery.

Afterwards it checks what a user would notice:
- every researcher who was given a VM had exactly their command run on that VM (the
  stand-in start-host records its argv and the PIN on its stdin), with the PIN they were told;
- no VM has two researchers, no researcher two VMs, no VM ran a command nobody was given;
- every log event in the log group is stored once: none missing, none doubled;
- the audit table tells each VM's story (created, booted, assigned to whom), ending in the row.

Prints a summary, then one JSON object (last line) with the figures and the list of
violations (empty when all holds). Exit status 1 when a violation was found.

    .venv/bin/python -m tests.reliability.fault_injection [--vms 100] [--researchers 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter

import psycopg2

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.tokens import log_stream_hostname
from lablink_cli.client import AdminClient, ApiCallFailed
from tests.support.db_probe import audit_trail
from tests.support.proof_stack import ProofStack

CRD_COMMAND = (
    'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Afault-{n}-{salt}" '
    '--redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
)


class ChaoticDelivery:
    """Stands between the log group's subscription and the log-processor Lambda: every batch
    is handed over three times, shuffled with other batches, some held back a round; a
    failed delivery (database down) is retried, as Lambda's asynchronous retries would."""

    def __init__(self, handler, rng: random.Random):
        self.handler = handler
        self.rng = rng
        self.lock = threading.Lock()
        self.queue: list[dict] = []
        self.held: list[dict] = []
        self.batches = 0
        self.deliveries = 0
        self.failed_deliveries = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaotic-delivery", daemon=True)

    def __call__(self, event, context):
        with self.lock:
            self.batches += 1
            self.queue.extend([event] * 3)
        return {"status": "queued"}

    def _run(self) -> None:
        from lablink_local.gateway import LambdaContext

        while not self.stopped.is_set() or self.pending():
            with self.lock:
                work, self.queue = self.queue + self.held, []
                self.held = []
            self.rng.shuffle(work)
            for event in work:
                if not self.stopped.is_set() and self.rng.random() < 0.2:
                    self.held.append(event)  # out of order: after batches that came later
                    continue
                while True:
                    try:
                        self.handler(event, LambdaContext("log_processor"))
                        self.deliveries += 1
                        break
                    except Exception:
                        self.failed_deliveries += 1
                        time.sleep(0.3)
            time.sleep(0.2)

    def pending(self) -> int:
        with self.lock:
            return len(self.queue) + len(self.held)

    def drain(self, timeout: float) -> None:
        self.stopped.set()
        self.thread.join(timeout)


class Chaos(threading.Thread):
    """Faults at random moments: one of each kind first (in random order), then any."""

    KINDS = ("postgres", "listener", "agent")

    def __init__(self, stack: ProofStack, rng: random.Random, gap: tuple[float, float], log):
        super().__init__(name="chaos", daemon=True)
        self.stack, self.rng, self.gap, self.log = stack, rng, gap, log
        self.stopped = threading.Event()
        self.done: Counter[str] = Counter()
        self.errors: list[str] = []

    def run(self) -> None:
        kinds = list(self.KINDS)
        self.rng.shuffle(kinds)
        while not self.stopped.wait(self.rng.uniform(*self.gap)):
            kind = kinds.pop(0) if kinds else self.rng.choice(self.KINDS)
            try:
                if self.fault(kind):
                    self.done[kind] += 1
                elif kind == "agent":
                    kinds.insert(0, kind)  # no agent runs yet: try again later
            except Exception as error:  # a fault that could not be made is a failed proof
                self.errors.append(f"{kind}: {error!r}")

    def fault(self, kind: str) -> bool:
        if kind == "postgres":
            down = self.rng.uniform(0.5, 3.0)
            self.log(f"fault: PostgreSQL stopped for {down:.1f} s")
            self.stack.restart_postgres(down)
            return True
        if kind == "listener":
            argv, env = self.stack.kill_listener()
            down = self.rng.uniform(0.3, 2.0)
            self.log(f"fault: listener killed (SIGKILL), down {down:.1f} s")
            time.sleep(down)
            self.stack.start_listener(argv, env)
            return True
        vms = [vm.hostname for vm in list(self.stack.simulator.vms.values())]
        self.rng.shuffle(vms)
        for hostname in vms:
            if self.stack.kill_agent(hostname):
                self.log(f"fault: agent of {hostname} killed (SIGKILL) and started again")
                return True
        return False


class Researcher(threading.Thread):
    """Asks for a VM at a random moment; retries while no VM is free or the API fails."""

    def __init__(self, n: int, api_url: str, start_after: float, deadline: float, salt: str):
        super().__init__(name=f"researcher-{n}", daemon=True)
        self.email = f"researcher{n}@example.org"
        self.command = CRD_COMMAND.format(n=n, salt=salt)
        self.code = f"4/0Afault-{n}-{salt}"
        self.client = AdminClient(api_url, timeout=30)
        self.start_after, self.deadline = start_after, deadline
        self.answer: dict | None = None
        self.attempts = 0
        self.failures: Counter[str] = Counter()
        self.asked_at = self.answered_at = 0.0

    def run(self) -> None:
        time.sleep(self.start_after)
        self.asked_at = time.monotonic()
        while time.monotonic() < self.deadline:
            self.attempts += 1
            try:
                self.answer = self.client.request_vm(self.email, self.command)
                self.answered_at = time.monotonic()
                return
            except ApiCallFailed as error:
                self.failures[str(error.status or "network")] += 1
                time.sleep(0.5 if error.status == 503 else 1.0)


def moto_events(stack: ProofStack) -> list[dict]:
    from lablink_local.cloud import session

    logs = session(stack.cloud.endpoint_url, stack.cloud.region).client("logs", endpoint_url=stack.cloud.endpoint_url)
    events, kwargs = [], {"logGroupName": stack.cloud.client_log_group}
    while True:
        page = logs.filter_log_events(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken") or not page["events"]:
            return events
        kwargs["nextToken"] = page["nextToken"]


def stored_events(database_url: str) -> list[tuple[str, str, str]]:
    """(event id, hostname, message) of every stored log event (the proof reads the table
    the log processor writes)."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event_id, hostname, message FROM vm_log_events")
            return cur.fetchall()
    finally:
        conn.close()


def check(stack: ProofStack, researchers: list[Researcher], db: Database, hostnames: list[str]) -> tuple[list[str], dict]:
    from lablink_local.cloudlogs import event_id

    violations: list[str] = []
    rows = {vm["hostname"]: vm for vm in db.vms.list_all()}
    calls = {h: (stack.simulator.by_hostname(h).start_host_calls() if stack.simulator.by_hostname(h) else []) for h in hostnames}

    # Researchers and their VMs.
    given = [r for r in researchers if r.answer]
    told = Counter(r.answer["hostname"] for r in given)
    for hostname, count in told.items():
        if count > 1:
            violations.append(f"{hostname} was given to {count} researchers")
    codes_of = {r.code: r for r in researchers}
    repeated = 0
    for r in given:
        hostname, pin = r.answer["hostname"], r.answer["pin"]
        row = rows.get(hostname)
        if row is None or row["useremail"] != r.email:
            violations.append(f"{r.email} was told {hostname}, whose row says {row and row['useremail']}")
        ran = calls.get(hostname, [])
        if not ran:
            violations.append(f"{hostname}: {r.email}'s command never ran")
            continue
        if len(ran) > 1:
            repeated += 1
        foreign = [c for c in ran if f"--code={r.code}" not in c["argv"] or f"--name={hostname}" not in c["argv"]]
        if foreign:
            violations.append(f"{hostname}: ran a command that is not {r.email}'s: {foreign[0]['argv']}")
        if ran[-1]["pin"] != pin:
            violations.append(f"{hostname}: the last start-host got PIN {ran[-1]['pin']}, {r.email} was told {pin}")
    given_hosts = set(told)
    for hostname, ran in calls.items():
        if ran and hostname not in given_hosts:
            codes = [a for c in ran for a in c["argv"] if a.startswith("--code=")]
            owners = {codes_of.get(c.split("=", 1)[1]) for c in codes}
            violations.append(f"{hostname} ran start-host for nobody who was told so: {sorted(str(o and o.email) for o in owners)}")
    emails = [row["useremail"] for row in rows.values() if row["useremail"]]
    if len(emails) != len(set(emails)):
        violations.append(f"a researcher holds two VMs: {[e for e, n in Counter(emails).items() if n > 1]}")

    # Log events: the group's events, each stored once.
    group = stack.cloud.client_log_group
    # Streams are "<hostname>.<tag>" (lablink.tokens.log_stream_name); rows hold the hostname.
    in_group = {event_id(group, e): (log_stream_hostname(e["logStreamName"]), e["message"]) for e in moto_events(stack)}
    stored = stored_events(stack.database_url)
    stored_ids = Counter(event for event, _, _ in stored)
    missing = [i for i in in_group if i not in stored_ids]
    extra = [i for i in stored_ids if i not in in_group]
    doubled_ids = [i for i, n in stored_ids.items() if n > 1]
    # A line stored twice under two ids would be a doubled line too.
    lines_group = Counter(in_group.values())
    lines_stored = Counter((host, message) for _, host, message in stored)
    doubled_lines = sum(max(0, n - lines_group[line]) for line, n in lines_stored.items())
    if missing:
        violations.append(f"{len(missing)} log events of the group are not stored")
    if extra:
        violations.append(f"{len(extra)} stored log events are not in the group")
    if doubled_ids or doubled_lines:
        violations.append(f"log events doubled: {len(doubled_ids)} ids, {doubled_lines} lines")

    # The audit trail: each VM's story, from its INSERT to its row as it is now.
    audit = audit_trail(db)
    by_host: dict[str, list[dict]] = {}
    for entry in audit:
        by_host.setdefault(entry["hostname"], []).append(entry)
    for hostname in hostnames:
        story = by_host.get(hostname, [])
        row = rows.get(hostname)
        if row is None:
            violations.append(f"{hostname}: launched, but it has no row")
            continue
        if not story or story[0]["action"] != "INSERT":
            violations.append(f"{hostname}: the audit trail does not start with its INSERT")
            continue
        if story[-1]["new_status"] != row["status"] or story[-1]["new_email"] != row["useremail"]:
            violations.append(f"{hostname}: the audit trail ends at {story[-1]['new_status']}/{story[-1]['new_email']}, the row is {row['status']}/{row['useremail']}")
        statuses = [e["new_status"] for e in story]
        if "running" not in statuses and row["useremail"]:
            violations.append(f"{hostname}: assigned, but the audit trail never shows it running")
        holders = {e["new_email"] for e in story if e["assignment_changed"] and e["new_email"]}
        if len(holders) > 1:
            violations.append(f"{hostname}: the audit trail shows {len(holders)} researchers: {sorted(holders)}")
        if row["useremail"] and holders != {row["useremail"]}:
            violations.append(f"{hostname}: the audit trail does not show its assignment to {row['useremail']}")

    figures = {
        "researchers_given_a_vm": len(given),
        "vms_that_ran_a_command": sum(1 for ran in calls.values() if ran),
        "vms_that_ran_it_more_than_once": repeated,
        "log_events_in_group": len(in_group),
        "log_events_stored": len(stored),
        "log_events_missing": len(missing),
        "log_events_doubled": len(doubled_ids) + doubled_lines,
        "audit_rows": len(audit),
    }
    return violations, figures


def wait_for(predicate, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--researchers", type=int, default=None, help="default: as many as VMs")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-gap", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                        help="seconds between faults")
    parser.add_argument("--request-window", type=float, default=None, help="researchers arrive within this many seconds")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    researchers_count = args.researchers if args.researchers is not None else args.vms
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    rng = random.Random(seed)
    window = args.request_window if args.request_window is not None else max(20.0, args.vms * 0.6)
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:7.1f} s] {text}", flush=True)

    config = LablinkConfig.model_validate(
        {"fleet": {"max_vms": max(args.vms, 1), "max_launch_per_request": min(500, max(args.vms, 1))}}
    )
    stack = ProofStack(config, boot_seconds=2.0, log_interval=0.5)
    say(f"seed {seed}: starting the local stack")
    stack.start()
    from lablink_local.gateway import load_function

    processor = load_function("log_processor")
    delivery = ChaoticDelivery(processor.handler, rng)
    processor.handler = delivery  # the subscription now hands its batches to the chaos
    delivery.thread.start()
    db = Database(stack.database_url, config.db, actor="proof-check")
    chaos = Chaos(stack, rng, tuple(args.fault_gap), say)
    result: dict = {"vms": args.vms, "researchers": researchers_count, "seed": seed}
    try:
        admin = AdminClient(stack.api_url, "admin", stack.admin_password)
        accepted = admin.launch(args.vms)
        hostnames = accepted["hostnames"]
        say(f"launch accepted: {len(hostnames)} VMs; waiting for the instances")
        operation = admin.wait_operation(accepted["operation_id"], lambda _: None, poll=0.5, timeout=args.timeout)
        say(f"launch {operation['status']}: {operation['done']} started, {operation['failed']} failed")
        chaos.start()
        deadline = time.monotonic() + args.timeout
        salt = f"{seed:x}"
        researchers = [
            Researcher(n, stack.api_url, rng.uniform(0, window), deadline, salt) for n in range(1, researchers_count + 1)
        ]
        for researcher in researchers:
            researcher.start()

        def settled() -> bool:
            if any(r.is_alive() for r in researchers):
                return False
            for r in researchers:
                if r.answer:
                    vm = stack.simulator.by_hostname(r.answer["hostname"])
                    ran = vm.start_host_calls() if vm else []
                    if not ran or ran[-1]["pin"] != r.answer["pin"]:
                        return False
            return True

        all_delivered = wait_for(settled, args.timeout)
        chaos.stopped.set()
        chaos.join(60)
        say(f"researchers done; faults: {dict(chaos.done)}; letting the logs settle")
        time.sleep(3 * stack.log_interval + 1)  # the last lines reach the group, the subscription
        delivery.drain(120)
        stack.simulator.stopped.set()  # no new VM processes from here on
        violations, figures = check(stack, researchers, db, hostnames)
        if not all_delivered:
            violations.append("not every researcher's command reached their VM before the timeout")
        violations += [f"fault not made: {e}" for e in chaos.errors]
        waits = sorted(r.answered_at - r.asked_at for r in researchers if r.answer)
        result.update(
            {
                "launch_status": operation["status"],
                "faults": {"postgres_restarts": chaos.done["postgres"], "listener_kills": chaos.done["listener"],
                           "agent_kills": chaos.done["agent"]},
                "log_batches": delivery.batches,
                "log_deliveries": delivery.deliveries,
                "log_deliveries_failed_and_retried": delivery.failed_deliveries,
                "researcher_attempts": sum(r.attempts for r in researchers),
                "researcher_failures": dict(sum((r.failures for r in researchers), Counter())),
                "researcher_wait_p50_s": round(waits[len(waits) // 2], 2) if waits else None,
                "researcher_wait_max_s": round(waits[-1], 2) if waits else None,
                **figures,
                "seconds": round(time.monotonic() - began, 1),
                "violations": violations,
            }
        )
    finally:
        chaos.stopped.set()
        delivery.stopped.set()
        db.close()
        stack.stop()
    for violation in result.get("violations", ["did not finish"]):
        print("VIOLATION:", violation)
    print(json.dumps(result))
    return 1 if result.get("violations", True) else 0


if __name__ == "__main__":
    sys.exit(main())
