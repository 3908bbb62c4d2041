"""The provisioning step: launches, destroys or reboots the client VMs of one operation.

A step may run again (Lambda retries an asynchronous invoke that failed), so it never starts
a second instance for a VM: a row that has an instance is skipped, and an instance tagged for
the VM is found before any new one is started. moto ignores RunInstances' ClientToken, so the
ClientToken only guards against a retried API call in AWS; these checks are what the tests prove.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from lablink import environment
from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.fleet import ec2 as fleet_ec2
from lablink.models import VmStatus
from lablink.observability import logger
from lablink.tokens import hash_token, mint_token
from lablink.userdata import render_user_data


def run_step(payload: Mapping, db: Database, cfg: LablinkConfig) -> dict:
    kind = payload.get("kind")
    operation_id = str(payload["operation_id"])
    hostnames = list(payload.get("hostnames") or [])
    db.operations.record_progress(operation_id)  # queued -> running (or succeeded when empty)
    if kind == "launch":
        return launch_vms(db, cfg, operation_id, hostnames)
    if kind == "destroy":
        return destroy_vms(db, cfg, operation_id, hostnames, everything=bool(payload.get("all")))
    if kind == "reboot":
        return reboot_vms(db, cfg, operation_id, hostnames)
    raise ValueError(f"unknown provisioning step kind {kind!r}")


def launch_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str]) -> dict:
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    from lablink.observability import NAMESPACE

    template_id = os.environ.get(environment.LAUNCH_TEMPLATE_ID)
    if not template_id:
        db.operations.record_progress(operation_id, failed=len(hostnames), error=f"{environment.LAUNCH_TEMPLATE_ID} is not set")
        return {"launched": 0, "failed": len(hostnames), "skipped": 0}
    subnets = [s.strip() for s in os.environ.get(environment.CLIENT_SUBNET_IDS, "").split(",") if s.strip()]
    ec2 = fleet_ec2.aws_client("ec2", cfg.app.region)
    rows = db.vms.get_instance_ids(hostnames)
    tagged = fleet_ec2.live_instances(ec2, cfg.app.environment, hostnames)
    launched = failed = skipped = withdrawn = 0

    for index, hostname in enumerate(hostnames):
        if rows.get(hostname):
            skipped += 1  # an earlier run of this step launched it (and counted it)
            continue
        if _cancelled(db, operation_id):
            break  # a "destroy all" cancelled this launch: start nothing more
        try:
            if hostname in tagged and hostname in rows:
                # Launched by an earlier run that stopped before recording the instance:
                # that instance carries the token whose hash the row holds.
                started = _record_or_terminate(db, ec2, hostname, tagged[hostname])
            else:
                if hostname in tagged:
                    # An instance whose row is gone: its token is lost, so it is replaced.
                    ec2.terminate_instances(InstanceIds=[tagged[hostname]])
                subnet = subnets[index % len(subnets)] if subnets else None
                started = _launch_one(db, cfg, ec2, operation_id, hostname, template_id, subnet, known=hostname in rows)
            if started:
                db.operations.record_progress(operation_id, done=1)
                launched += 1
            else:
                withdrawn += 1
                db.operations.record_progress(operation_id, failed=1, error=f"{hostname}: destroyed while it was being launched")
        except Exception as error:
            logger.exception("launch failed", extra={"hostname": hostname, "operation_id": operation_id})
            failed += 1
            if db.vms.exists(hostname):
                db.vms.set_status(hostname, VmStatus.ERROR)
            db.operations.record_progress(operation_id, failed=1, error=f"{hostname}: {error}"[:1000])
    if launched:
        metrics = EphemeralMetrics(namespace=NAMESPACE)
        metrics.add_metric(name="VMsLaunched", unit=MetricUnit.Count, value=launched)
        metrics.flush_metrics()
    result = {"launched": launched, "failed": failed, "skipped": skipped, "withdrawn": withdrawn}
    logger.info("launch step finished", extra={"operation_id": operation_id, **result})
    return result


def _cancelled(db: Database, operation_id: str) -> bool:
    found = db.operations.get(operation_id)
    return found is None or found["status"] == "cancelled"


def _record_or_terminate(db: Database, ec2, hostname: str, instance_id: str) -> bool:
    """Record the VM's instance; when a destroy took the row meanwhile, terminate the instance
    (that destroy may not have seen it: EC2's describe calls are eventually consistent)."""
    if db.vms.set_instance(hostname, instance_id):
        return True
    fleet_ec2.terminate(ec2, [instance_id])
    return False


def _launch_one(
    db: Database, cfg: LablinkConfig, ec2, operation_id: str, hostname: str, template_id: str, subnet: str | None, *, known: bool
) -> bool:
    """Give the VM a fresh token (on its row, created unless ``known``), then start its instance
    with that token in its user data and record the instance. False when a destroy came first
    (the row is gone or the operation cancelled): nothing is left running."""
    token = mint_token()
    token_hash = hash_token(token)
    recorded = db.vms.set_token_hash(hostname, token_hash) if known else db.vms.insert_for_launch(hostname, operation_id, token_hash)
    if not recorded:
        return False
    db.startup.record(hostname, {"terraform_apply_start": time.time()})
    user_data = render_user_data(
        cfg,
        hostname=hostname,
        token=token,
        api_url=os.environ.get(environment.API_URL, ""),
        listener_url=os.environ.get(environment.LISTENER_URL, ""),
    )
    instance_id = fleet_ec2.run_instance(
        ec2,
        template_id=template_id,
        client_token=fleet_ec2.client_token(operation_id, hostname, token_hash),
        user_data=user_data,
        tags=fleet_ec2.instance_tags(cfg.app.environment, hostname, operation_id),
        subnet_id=subnet,
    )
    if not _record_or_terminate(db, ec2, hostname, instance_id):
        return False
    # Phase 1 ends when EC2 has accepted the instance (it then boots: phase 2).
    db.startup.record(hostname, {"terraform_apply_end": time.time()})
    return True


def destroy_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str], *, everything: bool) -> dict:
    """Terminate the VMs' instances, mark their rows terminated, then remove them.

    Destroying everything covers what exists when the step runs, not when it was asked: the
    launches in flight are cancelled first (they start nothing more), then every row is taken
    and every instance tagged for the deployment, except those of launches started after that
    cancel. An instance a launch starts meanwhile is ended by that launch (set_instance refuses
    a taken row), so none outlives the destroy whatever the interleaving."""
    from botocore.exceptions import ClientError

    ec2 = fleet_ec2.aws_client("ec2", cfg.app.region)
    if everything:
        cancelled = db.operations.cancel_launches(operation_id)
        if cancelled:
            logger.info("launches cancelled by destroy all", extra={"operation_id": operation_id, "cancelled": cancelled})
    taken = db.vms.set_terminated(None if everything else hostnames)
    instance_ids = {iid for iid in taken.values() if iid}
    later_launches = db.operations.list_launches_in_flight()
    tagged = fleet_ec2.live_instances(ec2, cfg.app.environment, None if everything else hostnames, excluding_operations=later_launches)
    instance_ids |= set(tagged.values())
    try:
        fleet_ec2.terminate(ec2, sorted(instance_ids))
    except ClientError as error:
        # The rows stay (marked terminated): destroying them again retries the instances.
        logger.exception("terminate failed", extra={"operation_id": operation_id})
        db.operations.record_progress(operation_id, failed=len(hostnames), error=f"terminate failed: {error}"[:1000])
        return {"terminated": 0, "removed": 0}
    removed = db.vms.delete(taken)
    db.operations.record_progress(operation_id, done=len(hostnames))
    result = {"terminated": len(instance_ids), "removed": removed}
    logger.info("destroy step finished", extra={"operation_id": operation_id, **result})
    return result


def reboot_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str]) -> dict:
    """Reboot the VMs' instances (EC2 keeps each instance, its volume and its address, so the
    VM keeps its row and its assignment). A VM that has no instance by now fails the operation."""
    from botocore.exceptions import ClientError

    instance_ids = {hostname: iid for hostname, iid in db.vms.get_instance_ids(hostnames).items() if iid}
    missing = [hostname for hostname in hostnames if hostname not in instance_ids]
    if missing:
        db.operations.record_progress(operation_id, failed=len(missing), error=f"no instance to reboot: {', '.join(missing)}")
    try:
        fleet_ec2.reboot(fleet_ec2.aws_client("ec2", cfg.app.region), sorted(instance_ids.values()))
    except ClientError as error:
        logger.exception("reboot failed", extra={"operation_id": operation_id})
        db.operations.record_progress(operation_id, failed=len(instance_ids), error=f"reboot failed: {error}"[:1000])
        return {"rebooted": 0}
    db.operations.record_progress(operation_id, done=len(instance_ids))
    return {"rebooted": len(instance_ids)}
