"""Launch of a fleet: the admin's POST /api/launch {"num_vms": N} through the local gateway
(real authorizer and launch function), then the provisioning step (run_instances on the EC2
emulator, rows, tokens, instance ids). Times the 202 answer, and the moment every VM has its
row with its instance id and the emulator runs every instance.

The original LabLink ran `terraform apply` inside the request: its answer came only once
every instance existed, so on the same work it answers no sooner than this project's
"all instances" time (and behind API Gateway, whose limit is 29 s, not at all beyond that).

Last line: one JSON object.

    .venv/bin/python -m bench.launch_fleet [--vms 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.environment import DEPLOYMENT_TAG
from lablink.fleet.ec2 import HOSTNAME_TAG
from lablink_cli.client import AdminClient
from tests.support.db_probe import token_hash
from tests.support.proof_stack import ProofStack

TARGET_202_SECONDS = 2.0  # far inside API Gateway's 29 s
API_GATEWAY_LIMIT_SECONDS = 29.0


def running_instances(stack: ProofStack) -> set[str]:
    from lablink_local.cloud import session

    ec2 = session(stack.cloud.endpoint_url, stack.cloud.region).client("ec2", endpoint_url=stack.cloud.endpoint_url)
    filters = [
        {"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [stack.config.app.environment]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ]
    found = set()
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                found.add(tags.get(HOSTNAME_TAG))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    config = LablinkConfig.model_validate({"fleet": {"max_vms": args.vms, "max_launch_per_request": min(500, args.vms)}})
    stack = ProofStack(config, vms=False)
    stack.start()
    db = Database(stack.database_url, config.db, actor="bench-observer")
    try:
        admin = AdminClient(stack.api_url, "admin", stack.admin_password, timeout=60)
        admin.status()  # the functions are loaded and connected before the clock starts
        started = time.perf_counter()
        accepted = admin.launch(args.vms)
        answered = time.perf_counter() - started
        hostnames = accepted["hostnames"]
        print(f"202 after {answered:.3f} s with {len(hostnames)} hostnames", flush=True)
        rows_done = instances_done = None
        deadline = time.monotonic() + args.timeout
        while (rows_done is None or instances_done is None) and time.monotonic() < deadline:
            now = time.perf_counter() - started
            if rows_done is None:
                ids = db.vms.get_instance_ids(hostnames)
                if len(ids) == len(hostnames) and all(ids.values()):
                    rows_done = now
            # A VM's instance is started before its row records it, so the emulator is asked
            # (a describe of every instance, heavy: it shares this process with the step) once
            # the rows are done only, lest the observer slow down what it times.
            elif instances_done is None and set(hostnames) <= running_instances(stack):
                instances_done = now
            time.sleep(0.25)
        operation = admin.operation(accepted["operation_id"])
        tokens = sum(1 for h in hostnames if token_hash(db, h))
    finally:
        db.close()
        stack.stop()
    all_done = max(rows_done or 0, instances_done or 0) if rows_done and instances_done else None
    result = {
        "vms": args.vms,
        "seconds_to_202": round(answered, 3),
        "seconds_to_all_rows_with_instance_ids": round(rows_done, 2) if rows_done else None,
        "seconds_to_all_instances_running": round(instances_done, 2) if instances_done else None,
        "vms_per_s": round(args.vms / all_done, 1) if all_done else None,
        "operation_status": operation["status"],
        "operation_done": operation["done"],
        "operation_failed": operation["failed"],
        "rows_with_token": tokens,
        "target_202_seconds": TARGET_202_SECONDS,
        "original_answer_seconds_at_least": round(all_done, 2) if all_done else None,
        "original_fits_api_gateway_limit": bool(all_done and all_done < API_GATEWAY_LIMIT_SECONDS),
    }
    print(
        f"all {args.vms} rows with instance ids after {result['seconds_to_all_rows_with_instance_ids']} s, "
        f"all instances running after {result['seconds_to_all_instances_running']} s; operation {operation['status']}"
    )
    print(json.dumps(result))
    return 0 if all_done and operation["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
