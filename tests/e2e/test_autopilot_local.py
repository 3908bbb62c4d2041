"""The pool autopilot end to end (issue 13, "Done when"): `lablink local --reconcile-seconds 2`
keeps min_free VMs free by itself, refills right after claims, recycles idle sessions (the
simulated VMs' agents report in-use through their real probe), and destroys everything when
the workshop closes, leaving the history and a reason for every action.

The policy is set through lablink.pool.policy on the stack's own database: GET/PUT /api/pool
are built at the same time as this test (switch to them once both are merged)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

from e2e_support import LocalStackProcess, crd, wait_until
from test_local_stack import database_of

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.pool.policy import get_policy, update_policy
from lablink_local.postgres import with_database
from lablink_local.vms import in_use_program

RESEARCHERS = ("ada@example.org", "grace@example.org")


def request_vm(stack: LocalStackProcess, email: str, code: str) -> str:
    body = json.dumps({"email": email, "crd_command": crd(code)}).encode()
    request = urllib.request.Request(
        stack.api_url + "/api/request_vm", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["hostname"]


def test_the_pool_refills_recycles_and_closes_by_itself(pg_admin_url, tmp_path):
    stack = LocalStackProcess(tmp_path / "state", pg_admin_url, "--reconcile-seconds", "2")
    cfg = LablinkConfig()
    db = Database(with_database(pg_admin_url, database_of(stack)), cfg.db, actor="e2e-autopilot")
    busy_software = None
    try:

        def free() -> int:
            return db.assignments.count_free()

        def history() -> dict[str, dict]:
            rows = db.history.list_assignments(datetime.now(UTC), cfg.machine.machine_type, cfg.prices.hourly_usd)
            return {row["hostname"]: row for row in rows}

        def failure(what: str) -> str:
            return f"{what}\npool actions: {db.pool.list_latest_actions()}\nstack output:\n{stack.output()[-4000:]}"

        assert "pool autopilot: ready" in stack.output() and "every 2 s and after each claim" in stack.output()
        update_policy(db, cfg, {"min_free": 3})
        wait_until(lambda: free() == 3, 60, message=failure("3 free VMs, launched by the reconciler"))

        ada_vm, grace_vm = (request_vm(stack, email, f"4/0Aautopilot-{n}") for n, email in enumerate(RESEARCHERS))
        wait_until(lambda: free() == 3, 60, message=failure("3 free VMs again after 2 claims"))
        assert len(db.vms.list_all()) == 5

        # Ada uses her VM (the subject software runs on it); Grace's session stays idle.
        busy_software = subprocess.Popen(["bash", "-c", f"exec -a {in_use_program(ada_vm)} sleep 600"])
        wait_until(lambda: db.vms.get(ada_vm)["inuse"] is True, 30, message=failure("Ada's VM reported in use"))
        update_policy(db, cfg, {"idle_timeout_s": 5})
        wait_until(
            lambda: history()[grace_vm]["released_at"] is not None, 60, message=failure("Grace's idle VM recycled")
        )
        assert history()[grace_vm]["release_reason"] == "idle"
        assert history()[ada_vm]["released_at"] is None, "a session in use is not recycled"
        busy_software.kill()
        busy_software.wait()
        wait_until(
            lambda: history()[ada_vm]["released_at"] is not None, 60, message=failure("Ada's VM recycled once idle")
        )
        assert history()[ada_vm]["release_reason"] == "idle"
        wait_until(lambda: free() == 3, 60, message=failure("3 free VMs after the recycling"))

        closes_at = datetime.now(UTC) + timedelta(seconds=4)
        update_policy(db, cfg, {"closes_at": closes_at.isoformat()})
        wait_until(lambda: not db.vms.list_all(), 60, message=failure("every VM destroyed at closes_at"))
        assert get_policy(db, cfg).paused
        kept = history()
        assert {ada_vm, grace_vm} <= set(kept) and all(kept[h]["release_reason"] == "idle" for h in (ada_vm, grace_vm))

        actions = db.pool.list_latest_actions()
        done = {(a["action"], a["hostname"]) for a in actions}
        assert {("recycle", ada_vm), ("recycle", grace_vm), ("close", None)} <= done
        # 3 for the pool, 2 to refill after the claims (recycling an assigned VM takes no free one).
        launches = [a["reason"] for a in actions if a["action"] == "launch"]
        assert sum(int(reason.rsplit("launching ", 1)[1]) for reason in launches) == 5, launches
        assert all(a["reason"] for a in actions)
        recycled = [a["reason"] for a in actions if a["action"] == "recycle"]
        assert recycled and all(reason.startswith("idle:") for reason in recycled)
    finally:
        if busy_software is not None and busy_software.poll() is None:
            busy_software.kill()
        db.close()
        assert stack.stop() == 0
