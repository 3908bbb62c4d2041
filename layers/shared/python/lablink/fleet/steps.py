"""The provisioning step: launches, destroys or reboots the client VMs of one operation.

A step may run again (Lambda retries an asynchronous invoke that failed), so it never starts
a second instance for a VM: a row that has an instance is skipped, and an instance tagged for
the VM is found before any new one is started. moto ignores RunInstances' ClientToken, so the
ClientToken only guards against a retried API call in AWS; these checks are what the tests prove.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lablink import environment
from lablink.config import LablinkConfig
from lablink.db.database import Database
from lablink.fleet import ec2 as fleet_ec2
from lablink.models import VmStatus
from lablink.observability import logger
from lablink.tokens import hash_token, mint_token
from lablink.userdata import render_user_data

# A launch step whose operation ended this way starts nothing: Lambda may deliver an
# asynchronous event again up to 6 hours later, long after the reconciler declared its step
# dead (failed) or a "destroy all" cancelled it.
ENDED_UNDONE = frozenset({"failed", "cancelled"})


def run_step(payload: Mapping, db: Database, cfg: LablinkConfig) -> dict:
    kind = payload.get("kind")
    operation_id = str(payload["operation_id"])
    hostnames = list(payload.get("hostnames") or [])
    status = db.operations.mark_running(operation_id)
    if kind == "launch":
        return launch_vms(db, cfg, operation_id, hostnames)  # it checks its operation before each VM
    if status != "running":
        # Lambda delivers an asynchronous event at least once: a destroy run again after it
        # ended would cancel later launches and take VMs made since (a freed hostname is
        # given again); a reboot would reboot again.
        logger.info("step of an ended operation: nothing to do", extra={"operation_id": operation_id, "status": status})
        return {"terminated": 0, "removed": 0} if kind == "destroy" else {"rebooted": 0}
    if kind == "destroy":
        return destroy_vms(db, cfg, operation_id, hostnames, everything=bool(payload.get("all")))
    if kind == "reboot":
        return reboot_vms(db, cfg, operation_id, hostnames)
    raise ValueError(f"unknown provisioning step kind {kind!r}")


@dataclass(frozen=True)
class _Launch:
    """What every VM of one launch step shares."""

    db: Database
    cfg: LablinkConfig
    ec2: Any
    operation_id: str
    template_id: str
    subnets: list[str]
    rows: dict[str, str | None]
    tagged: dict[str, str]


def launch_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str]) -> dict:
    """Launch the VMs, ``fleet.launch_concurrency`` at a time (RunInstances takes seconds in
    AWS; one after another, 500 VMs took minutes). The workers share the step's database
    connection, which runs the statements of different threads in turn (a VM's few
    statements take milliseconds), and its EC2 client (boto3 clients are thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    from lablink.observability import NAMESPACE

    if _stopped(db, operation_id):
        logger.info("launch step of an ended operation: nothing to do", extra={"operation_id": operation_id})
        return {"launched": 0, "failed": 0, "skipped": 0, "withdrawn": 0}
    template_id = os.environ.get(environment.LAUNCH_TEMPLATE_ID)
    if not template_id:
        db.operations.record_progress(
            operation_id, failed=len(hostnames), error=f"{environment.LAUNCH_TEMPLATE_ID} is not set"
        )
        return {"launched": 0, "failed": len(hostnames), "skipped": 0}
    ec2 = fleet_ec2.launch_client(
        cfg.app.region, concurrency=cfg.fleet.launch_concurrency, attempts=cfg.fleet.launch_attempts
    )
    launch = _Launch(
        db=db,
        cfg=cfg,
        ec2=ec2,
        operation_id=operation_id,
        template_id=template_id,
        subnets=[s.strip() for s in os.environ.get(environment.CLIENT_SUBNET_IDS, "").split(",") if s.strip()],
        rows=db.vms.get_instance_ids(hostnames),
        tagged=fleet_ec2.live_instances(ec2, cfg.app.environment, hostnames),
    )
    with ThreadPoolExecutor(max_workers=cfg.fleet.launch_concurrency, thread_name_prefix="launch") as pool:
        outcomes = Counter(pool.map(lambda item: _launch_vm(launch, *item), enumerate(hostnames)))
    launched = outcomes["launched"]
    if launched:
        metrics = EphemeralMetrics(namespace=NAMESPACE)
        metrics.add_metric(name="VMsLaunched", unit=MetricUnit.Count, value=launched)
        metrics.flush_metrics()
    result = {key: outcomes[key] for key in ("launched", "failed", "skipped", "withdrawn")}
    logger.info("launch step finished", extra={"operation_id": operation_id, **result})
    return result


def _launch_vm(launch: _Launch, index: int, hostname: str) -> str:
    """Launch one VM and count it on the operation; returns its outcome: launched, skipped
    (an earlier run of this step launched it, and counted it), withdrawn (destroyed while
    it was launched), failed (with EC2's reason on the operation), or stopped (the operation
    was cancelled or abandoned before its turn: it starts nothing more)."""
    db = launch.db
    if launch.rows.get(hostname):
        return "skipped"
    if _stopped(db, launch.operation_id):
        return "stopped"
    try:
        if hostname in launch.tagged and hostname in launch.rows:
            # Launched by an earlier run that stopped before recording the instance:
            # that instance carries the token whose hash the row holds.
            started = _record_or_terminate(launch, hostname, launch.tagged[hostname])
        else:
            if hostname in launch.tagged:
                # An instance whose row is gone: its token is lost, so it is replaced.
                launch.ec2.terminate_instances(InstanceIds=[launch.tagged[hostname]])
            subnet = launch.subnets[index % len(launch.subnets)] if launch.subnets else None
            started = _launch_one(launch, hostname, subnet, known=hostname in launch.rows)
    except Exception as error:
        logger.exception("launch failed", extra={"hostname": hostname, "operation_id": launch.operation_id})
        if db.vms.exists(hostname):
            db.vms.set_status(hostname, VmStatus.ERROR)
        db.operations.record_progress(launch.operation_id, failed=1, error=f"{hostname}: {error}"[:1000])
        return "failed"
    if not started:
        db.operations.record_progress(
            launch.operation_id, failed=1, error=f"{hostname}: destroyed while it was being launched"
        )
        return "withdrawn"
    db.operations.record_progress(launch.operation_id, done=1)
    return "launched"


def _stopped(db: Database, operation_id: str) -> bool:
    """The operation is gone, or ended undone (a "destroy all" cancelled it, the reconciler
    declared its step dead)."""
    found = db.operations.get(operation_id)
    return found is None or found["status"] in ENDED_UNDONE


def _record_or_terminate(launch: _Launch, hostname: str, instance_id: str) -> bool:
    """Record the VM's instance (and its type, from the launch template: the configured
    machine type, the only one the step may start); when a destroy took the row meanwhile,
    terminate the instance (that destroy may not have seen it: EC2's describe calls are
    eventually consistent)."""
    if launch.db.vms.set_instance(hostname, instance_id, launch.cfg.machine.machine_type):
        return True
    fleet_ec2.terminate(launch.ec2, [instance_id])
    return False


def _launch_one(launch: _Launch, hostname: str, subnet: str | None, *, known: bool) -> bool:
    """Give the VM a fresh token (on its row, created unless ``known``), then start its instance
    with that token in its user data and record the instance. False when a destroy came first
    (the row is gone or the operation cancelled): nothing is left running."""
    db, cfg = launch.db, launch.cfg
    token = mint_token()
    token_hash = hash_token(token)
    recorded = (
        db.vms.set_token_hash(hostname, token_hash)
        if known
        else db.vms.insert_for_launch(hostname, launch.operation_id, token_hash)
    )
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
        launch.ec2,
        template_id=launch.template_id,
        client_token=fleet_ec2.client_token(launch.operation_id, hostname, token_hash),
        user_data=user_data,
        tags=fleet_ec2.instance_tags(cfg.app.environment, hostname, launch.operation_id),
        subnet_id=subnet,
        attempts=cfg.fleet.launch_attempts,
    )
    if not _record_or_terminate(launch, hostname, instance_id):
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
            logger.info(
                "launches cancelled by destroy all", extra={"operation_id": operation_id, "cancelled": cancelled}
            )
    taken = db.vms.set_terminated(None if everything else hostnames)
    instance_ids = {iid for iid in taken.values() if iid}
    later_launches = db.operations.list_launches_in_flight()
    tagged = fleet_ec2.live_instances(
        ec2, cfg.app.environment, None if everything else hostnames, excluding_operations=later_launches
    )
    instance_ids |= set(tagged.values())
    try:
        fleet_ec2.terminate(ec2, sorted(instance_ids))
    except ClientError as error:
        # The rows stay (marked terminated): destroying them again retries the instances.
        logger.exception("terminate failed", extra={"operation_id": operation_id})
        # A destroy of everything counts no hostname: one failure still fails it.
        db.operations.record_progress(
            operation_id, failed=max(len(hostnames), 1), error=f"terminate failed: {error}"[:1000]
        )
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
        db.operations.record_progress(
            operation_id, failed=len(missing), error=f"no instance to reboot: {', '.join(missing)}"
        )
    try:
        fleet_ec2.reboot(fleet_ec2.aws_client("ec2", cfg.app.region), sorted(instance_ids.values()))
    except ClientError as error:
        logger.exception("reboot failed", extra={"operation_id": operation_id})
        db.operations.record_progress(operation_id, failed=len(instance_ids), error=f"reboot failed: {error}"[:1000])
        return {"rebooted": 0}
    db.operations.record_progress(operation_id, done=len(instance_ids))
    return {"rebooted": len(instance_ids)}
