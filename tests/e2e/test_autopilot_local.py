"""The pool autopilot end to end (issue 13, "Done when"): `lablink local --reconcile-seconds 2`
keeps min_free VMs free by itself, refills right after claims, recycles idle sessions (the
simulated VMs' agents report in-use through their real probe), and destroys everything when
the workshop closes, leaving the history and a reason for every action. Everything goes
through the HTTP API, as an admin and researchers would (the admin client of the CLI)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

from e2e_support import LocalStackProcess, crd, wait_until

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
    admin = stack.client
    busy_software = None
    try:

        def free() -> int:
            return admin.free_count()

        def history() -> dict[str, dict]:
            return {row["hostname"]: row for row in json.loads(admin.history("json"))["history"]}

        def vm(hostname: str) -> dict:
            return next(v for v in admin.vms() if v["hostname"] == hostname)

        def failure(what: str) -> str:
            return f"{what}\npool actions: {admin.pool_status()['actions']}\nstack output:\n{stack.output()[-4000:]}"

        assert "pool autopilot: ready" in stack.output() and "every 2 s and after each claim" in stack.output()
        admin.set_pool({"min_free": 3})
        wait_until(lambda: free() == 3, 60, message=failure("3 free VMs, launched by the reconciler"))

        ada_vm, grace_vm = (request_vm(stack, email, f"4/0Aautopilot-{n}") for n, email in enumerate(RESEARCHERS))
        wait_until(lambda: free() == 3, 60, message=failure("3 free VMs again after 2 claims"))
        assert len(admin.vms()) == 5

        # Ada uses her VM (the subject software runs on it); Grace's session stays idle.
        busy_software = subprocess.Popen(["bash", "-c", f"exec -a {in_use_program(ada_vm)} sleep 600"])
        wait_until(lambda: vm(ada_vm)["inuse"] is True, 30, message=failure("Ada's VM reported in use"))
        admin.set_pool({"idle_timeout_s": 5})
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
        admin.set_pool({"closes_at": closes_at.isoformat()})
        wait_until(lambda: not admin.vms(), 60, message=failure("every VM destroyed at closes_at"))
        assert admin.pool()["paused"]
        kept = history()
        assert {ada_vm, grace_vm} <= set(kept) and all(kept[h]["release_reason"] == "idle" for h in (ada_vm, grace_vm))

        actions = admin.pool_status()["actions"]
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
        assert stack.stop() == 0
