"""Assignment burst: N researchers request at once against M free VMs.

Runs this project's request path (the rate-limit count of request_vm, all from one source
address as a room behind one NAT, then the claim: one UPDATE ... FOR UPDATE SKIP LOCKED) and, on the same
machine in the same run, the original LabLink algorithm (SELECT the first free VM, then
UPDATE it, then read back by email), both straight to PostgreSQL; then ours again through
PgBouncer in transaction mode (the functions' path: RDS Proxy's stand-in) with
--pool-size server connections. Prints a human summary, then, as its last line, one JSON
object with the figures of the three ("lablink", "original", "lablink_pooled").

    .venv/bin/python -m bench.assign_burst [--requests 1000] [--vms 300] [--connections 16] [--pool-size 16]

Each requester is its own process with its own connection, as Lambda execution
environments are. The default of 16 stands for the RDS Proxy's pool of database connections
that the Lambdas share; on this 2-core machine more concurrent backends only add context
switches (see --connections).

Uses DATABASE_URL's server when set, else starts a throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import uuid

import psycopg2

from lablink.config import DbConfig, ResearcherConfig
from lablink.db.assignments import new_pin
from lablink.db.database import Database
from lablink.db.errors import NoFreeVm
from lablink.db.rate_limits import Limit
from lablink_local.pgbouncer import DEFAULT_POOL_SIZE, LocalPgBouncer
from lablink_local.postgres import create_migrated_database, database_server, drop_database
from tests.support.db_probe import delete_all_vms, forget_rate_limits


def ours(url: str):
    database = Database(url, DbConfig(), actor="bench")
    limits = ResearcherConfig()
    per_address, per_email = Limit(limits.attempts_per_address, limits.address_window_s), Limit(limits.attempts_per_email, limits.email_window_s)

    def request(email: str) -> str | None:
        database.rate_limits.record_attempt("203.0.113.1", email, per_address, per_email)
        try:
            return database.assignments.claim(email, f"start-host --code={email}").hostname
        except NoFreeVm:
            return None

    return request, database.close


def original(url: str):
    """The seed's assign_vm + get_vm_details, as it ran (autocommit, no lock, no ORDER BY).
    Kept here, outside the data layer, only as the baseline being measured."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()

    def request(email: str) -> str | None:
        cur.execute("SELECT hostname FROM vms WHERE useremail IS NULL AND status = 'running' LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(
            "UPDATE vms SET useremail = %s, crdcommand = %s, pin = %s, inuse = FALSE, healthy = NULL WHERE hostname = %s",
            (email, f"start-host --code={email}", new_pin(), row[0]),
        )
        # The seed then looked the VM up by email to render the success page.
        cur.execute("SELECT hostname FROM vms WHERE useremail = %s", (email,))
        found = cur.fetchone()
        return found[0] if found else None

    return request, conn.close


ALGORITHMS = {"lablink": ours, "original": original}


def _requester(url: str, algorithm_name: str, emails: list[str], start_line, results) -> None:
    """One requester process (as one Lambda execution environment): its own connection, its
    share of the researchers, each request timed on the system-wide monotonic clock."""
    request, close = ALGORITHMS[algorithm_name](url)
    answers = []
    start_line.wait()
    started = time.monotonic()
    for email in emails:
        answers.append((email, request(email), time.monotonic()))
    close()
    results.put((started, answers))


def run(url: str, algorithm_name: str, requests: int, vms: int, connections: int) -> dict:
    setup = Database(url, DbConfig(), actor="bench-setup")
    delete_all_vms(setup)
    forget_rate_limits(setup)
    for i in range(vms):
        setup.vms.insert(f"lablink-vm-bench-{i}", status="running")

    emails = [f"researcher{i}@example.org" for i in range(requests)]
    context = multiprocessing.get_context("fork")
    start_line = context.Barrier(connections + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_requester, args=(url, algorithm_name, emails[i::connections], start_line, results))
        for i in range(connections)
    ]
    for process in processes:
        process.start()
    start_line.wait()
    reports = [results.get() for _ in processes]
    for process in processes:
        process.join()
    started = min(start for start, _ in reports)
    answers = [answer for _, batch in reports for answer in batch]
    elapsed = max(at for _, _, at in answers) - started

    told_assigned = [(email, host) for email, host, _ in answers if host]
    # The rate at which VMs were handed out: assignments over the time until the last one.
    handing_out = max((at for _, host, at in answers if host), default=started) - started
    rows = {vm["hostname"]: vm["useremail"] for vm in setup.vms.list_all()}
    setup.close()
    # A double booking: a researcher was told "you have VM X" but X belongs to someone else.
    double_bookings = sum(1 for email, host in told_assigned if rows.get(host) != email)
    holders = [email for email in rows.values() if email]
    return {
        "assigned": len(set(holders)),
        "told_assigned": len(told_assigned),
        "double_bookings": double_bookings,
        "researchers_with_two_vms": len(holders) - len(set(holders)),
        "refused": requests - len(told_assigned),
        "idle_vms_left": sum(1 for email in rows.values() if email is None),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "seconds_to_last_assignment": round(handing_out, 3),
        "assignments_per_s": round(len(set(holders)) / handing_out, 1) if handing_out else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=300)
    parser.add_argument("--connections", type=int, default=16, help="concurrent requester processes (one DB connection each)")
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE, help="PgBouncer's server connections (the pooled run)")
    args = parser.parse_args()

    with database_server() as admin_url, LocalPgBouncer(admin_url, pool_size=args.pool_size) as pooler:
        name = f"lablink_bench_{uuid.uuid4().hex[:8]}"
        url = create_migrated_database(admin_url, name)
        runs = {"lablink": ("lablink", url), "original": ("original", url), "lablink_pooled": ("lablink", pooler.pooled(url))}
        try:
            result = {"requests": args.requests, "vms": args.vms, "connections": args.connections, "pool_size": args.pool_size}
            for label, (algorithm, path) in runs.items():
                result[label] = run(path, algorithm, args.requests, args.vms, args.connections)
                print(f"{label:>14}: {json.dumps(result[label])}")
        finally:
            drop_database(admin_url, name)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
