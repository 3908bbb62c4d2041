"""One reconcile of the pool over a fleet of N VMs (default 500): a real PostgreSQL, EC2 on
moto in this process. Two runs are timed: a steady one (the fleet matches the policy:
nothing to do), and a busy one (a tenth of the sessions idle too long: recycled; the free
VMs are kept). Provisioning steps are recorded, not run.

The reconciler's own work (its queries, its lock, its decisions, its EC2 calls) is what is
timed against the target. Its one describe of the deployment's instances is timed apart and
served to both runs from that answer: moto evaluates a tag filter over 500 instances in
seconds to tens of seconds on this machine, which measures the emulator, not EC2.

Last line: one JSON object.

    .venv/bin/python -m bench.reconcile [--vms 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.fleet import dispatch
from lablink.fleet import ec2 as fleet_ec2
from lablink.models import VmStatus, vm_hostname
from lablink.pool.policy import update_policy
from lablink.pool.reconciler import Ec2Fleet, reconcile
from lablink_local.postgres import create_migrated_database, database_server, drop_database

TARGET_SECONDS = 1.0


def build_fleet(db: Database, ec2, cfg: LablinkConfig, vms: int) -> list[str]:
    """``vms`` running VMs with their instances; two thirds assigned. Returns the assigned."""
    env = cfg.app.environment
    assigned = []
    for number in range(1, vms + 1):
        hostname = vm_hostname(env, number)
        tags = fleet_ec2.instance_tags(env, hostname, "bench")
        instance_id = ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"][0]["InstanceId"]
        db.vms.insert(hostname, status=VmStatus.RUNNING, instance_id=instance_id)
    for number in range(1, vms * 2 // 3 + 1):
        hostname = db.assignments.claim(f"participant{number}@example.org", "start-host --code=x").hostname
        db.vms.set_in_use(hostname, number % 10 != 0)  # every tenth session is idle
        assigned.append(hostname)
    return assigned


class AnsweredFleet(Ec2Fleet):
    """The EC2 fleet, with the describe answered once (timed by the caller)."""

    def __init__(self, ec2, environment: str) -> None:
        super().__init__(ec2, environment)
        began = time.perf_counter()
        self.answer = super().instances()
        self.describe_seconds = time.perf_counter() - began

    def instances(self) -> dict[str, str]:
        return dict(self.answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=500)
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-west-2"})
    os.environ.update({"POWERTOOLS_TRACE_DISABLED": "1"})
    cfg = LablinkConfig.model_validate({"fleet": {"max_vms": args.vms + 100}})
    started_steps: list[dict] = []
    dispatch.set_dispatcher(started_steps.append)
    with database_server() as admin_url, mock_aws():
        name = f"lablink_bench_reconcile_{os.getpid()}"
        url = create_migrated_database(admin_url, name)
        db = Database(url, cfg.db, actor="bench")
        try:
            ec2 = boto3.client("ec2", region_name="us-west-2")
            free = args.vms - args.vms * 2 // 3
            update_policy(db, cfg, {"min_free": free, "max_vms": args.vms + 100, "idle_timeout_s": 600})
            build_fleet(db, ec2, cfg, args.vms)
            fleet = AnsweredFleet(ec2, cfg.app.environment)
            now = datetime.now(UTC)

            began = time.perf_counter()
            steady = reconcile(db, fleet, cfg, now)
            steady_s = time.perf_counter() - began

            began = time.perf_counter()
            busy = reconcile(db, fleet, cfg, now + timedelta(seconds=700))
            busy_s = time.perf_counter() - began
        finally:
            db.close()
            drop_database(admin_url, name)
    recycled = sum(1 for a in busy.actions if a.action == "recycle")
    launched = sum(len(p["hostnames"]) for p in started_steps if p["kind"] == "launch")
    result = {
        "vms": args.vms,
        "steady_reconcile_seconds": round(steady_s, 3),
        "steady_actions": len(steady.actions),
        "busy_reconcile_seconds": round(busy_s, 3),
        "busy_recycled": recycled,
        "busy_launched": launched,
        "moto_describe_instances_seconds": round(fleet.describe_seconds, 3),
        "target_seconds": TARGET_SECONDS,
    }
    print(
        f"{args.vms} VMs: steady reconcile {steady_s:.3f} s; busy ({recycled} recycled, {launched} launched) {busy_s:.3f} s"
    )
    print(json.dumps(result))
    return 0 if max(steady_s, busy_s) <= TARGET_SECONDS and not steady.actions else 1


if __name__ == "__main__":
    sys.exit(main())
