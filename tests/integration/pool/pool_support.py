"""The pool tests' harness: one reconcile at a chosen time, then the provisioning steps it
started run to their end; VMs 'boot' by reporting as the client agent would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lablink import runtime
from lablink.db.database import Database
from lablink.models import VmStatus
from lablink.pool.policy import update_policy
from lablink.pool.reconciler import Ec2Fleet, ReconcileResult, reconcile
from lablink_local.provisioning import InlineProvisioner

ENVIRONMENT = "pooltest"
CONFIG = {
    "app": {"environment": ENVIRONMENT, "region": "us-west-2"},
    "fleet": {"max_launch_per_request": 100, "max_vms": 600},
}
# Long enough that no VM of a test counts as broken unless the test means it to.
PATIENT = {"unhealthy_after_s": 10 * 24 * 3600}


@dataclass
class PoolHarness:
    db: Database
    fleet: Ec2Fleet
    ec2: object
    provisioner: InlineProvisioner
    start: datetime

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def from_now(self, seconds: float) -> float:
        """The offset of ``seconds`` after the real present: for rules timed from what the
        database stamped with its own clock (an operation's updated_at), however slowly the
        test got there."""
        return (datetime.now(UTC) - self.start).total_seconds() + seconds

    def reconcile(self, after_s: float = 0) -> ReconcileResult:
        result = reconcile(self.db, self.fleet, runtime.config(), self.at(after_s))
        assert self.provisioner.wait(timeout=60)
        return result

    def set_policy(self, **changes) -> None:
        update_policy(self.db, runtime.config(), changes)

    def boot(self) -> list[str]:
        """Every VM still initializing reports 'running' (its agent is ready); their hostnames."""
        booted = [vm["hostname"] for vm in self.db.vms.list_all() if vm["status"] == VmStatus.INITIALIZING]
        for hostname in booted:
            self.db.vms.set_status(hostname, VmStatus.RUNNING)
        return booted

    def claim(self, email: str) -> str:
        return self.db.assignments.claim(
            email, "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=x"
        ).hostname

    def free(self) -> int:
        return self.db.assignments.count_free()

    def actions(self, result: ReconcileResult, action: str) -> list:
        return [a for a in result.actions if a.action == action]

    def history(self) -> dict[str, dict]:
        """email -> its latest assignment in the history."""
        cfg = runtime.config()
        rows = self.db.history.list_assignments(self.at(0), cfg.machine.machine_type, cfg.prices.hourly_usd)
        return {row["email"]: row for row in rows}
