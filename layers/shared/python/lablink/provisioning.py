"""The provisioning step: launches and destroys client VMs on EC2 for one operation.

The launch API starts it through ``start_async``, the one seam between "in AWS" (an
asynchronous Lambda invoke of $PROVISION_FUNCTION_NAME) and "on this machine"
($LABLINK_PROVISION_INLINE=1: the same step in a background thread).

A step may run again (Lambda retries an asynchronous invoke that failed), so it never starts
a second instance for a VM: a row that has an instance is skipped, and an instance tagged for
the VM is found before any new one is started. moto ignores RunInstances' ClientToken, so the
ClientToken only guards against a retried API call in AWS; these checks are what the tests prove.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping

from lablink.config import LablinkConfig
from lablink.models import VmStatus
from lablink.observability import logger
from lablink.repository import Database
from lablink.tokens import hash_token, mint_token
from lablink.userdata import render_user_data

INLINE_ENV = "LABLINK_PROVISION_INLINE"
FUNCTION_ENV = "PROVISION_FUNCTION_NAME"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
TAG_DEPLOYMENT = "lablink:deployment"
TAG_HOSTNAME = "lablink:hostname"
TAG_OPERATION = "lablink:operation"

_inline_threads: list[threading.Thread] = []


# -- starting the step ------------------------------------------------------------------


def start_async(payload: Mapping) -> None:
    """Run the step for ``payload`` without waiting for it."""
    if os.environ.get(INLINE_ENV) == "1":
        thread = threading.Thread(target=_run_inline, args=(dict(payload),), name=f"provision-{payload['operation_id']}", daemon=True)
        _inline_threads[:] = [t for t in _inline_threads if t.is_alive()]  # a long-running stack keeps none it is done with
        _inline_threads.append(thread)
        thread.start()
        return
    function = os.environ.get(FUNCTION_ENV)
    if not function:
        raise RuntimeError(f"{FUNCTION_ENV} is not set")
    aws_client("lambda").invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode())


def _run_inline(payload: dict) -> None:
    from lablink.repository import database_url
    from lablink.runtime import config

    cfg = config()
    db = Database(database_url(), cfg.db, actor="provision")
    try:
        run_step(payload, db, cfg)
    except Exception:
        logger.exception("inline provisioning step failed", extra={"operation_id": payload.get("operation_id")})
    finally:
        db.close()


def wait_inline(timeout: float = 60.0) -> bool:
    """Wait for the inline steps started so far (tests, the local stack); False on timeout."""
    deadline = time.monotonic() + timeout
    for thread in list(_inline_threads):
        thread.join(max(0.0, deadline - time.monotonic()))
    _inline_threads[:] = [t for t in _inline_threads if t.is_alive()]
    return not _inline_threads


# -- the step -----------------------------------------------------------------------------


def run_step(payload: Mapping, db: Database, cfg: LablinkConfig) -> dict:
    kind = payload.get("kind")
    operation_id = str(payload["operation_id"])
    hostnames = list(payload.get("hostnames") or [])
    db.record_operation_progress(operation_id)  # queued -> running (or succeeded when empty)
    if kind == "launch":
        return launch_vms(db, cfg, operation_id, hostnames)
    if kind == "destroy":
        return destroy_vms(db, cfg, operation_id, hostnames, everything=bool(payload.get("all")))
    raise ValueError(f"unknown provisioning step kind {kind!r}")


def aws_client(service: str, region: str | None = None):
    """A boto3 client, its calls traced by X-Ray (botocore is patched on first use only:
    the functions that never call AWS do not pay for importing it)."""
    import boto3

    from lablink.observability import tracer

    tracer.patch(["botocore"])
    return boto3.client(service, region_name=region) if region else boto3.client(service)


def _ec2(cfg: LablinkConfig):
    return aws_client("ec2", cfg.app.region)


def client_token(operation_id: str, hostname: str, token_hash: str) -> str:
    """Idempotency key of one RunInstances call (64 characters at most)."""
    return hashlib.sha256(f"{operation_id}:{hostname}:{token_hash}".encode()).hexdigest()[:64]


def live_instances(ec2, environment: str, hostnames: Iterable[str] | None = None) -> dict[str, str]:
    """hostname -> id of the deployment's instances that are not terminated (or terminating)."""
    filters = [{"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [environment]}, {"Name": "instance-state-name", "Values": LIVE_STATES}]
    names = None if hostnames is None else list(hostnames)
    chunks = [None] if names is None else [names[i : i + 190] for i in range(0, len(names), 190)]
    found: dict[str, str] = {}
    for chunk in chunks:
        if chunk is not None and not chunk:
            continue
        chunk_filters = filters if chunk is None else filters + [{"Name": f"tag:{TAG_HOSTNAME}", "Values": chunk}]
        for page in ec2.get_paginator("describe_instances").paginate(Filters=chunk_filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if TAG_HOSTNAME in tags:
                        found[tags[TAG_HOSTNAME]] = instance["InstanceId"]
    return found


def launch_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str]) -> dict:
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    from lablink.observability import NAMESPACE

    template_id = os.environ.get("LAUNCH_TEMPLATE_ID")
    if not template_id:
        db.record_operation_progress(operation_id, failed=len(hostnames), error="LAUNCH_TEMPLATE_ID is not set")
        return {"launched": 0, "failed": len(hostnames), "skipped": 0}
    subnets = [s.strip() for s in os.environ.get("CLIENT_SUBNET_IDS", "").split(",") if s.strip()]
    api_url = os.environ.get("API_URL", "")
    listener_url = os.environ.get("LISTENER_URL", "")
    environment = cfg.app.environment
    ec2 = _ec2(cfg)
    rows = db.get_instance_ids(hostnames)
    tagged = live_instances(ec2, environment, hostnames)
    launched = failed = skipped = 0
    metrics = EphemeralMetrics(namespace=NAMESPACE)

    for index, hostname in enumerate(hostnames):
        if rows.get(hostname):
            skipped += 1  # an earlier run of this step launched it (and counted it)
            continue
        try:
            if hostname in tagged and hostname in rows:
                # Launched by an earlier run that stopped before recording the instance:
                # that instance carries the token whose hash the row holds.
                db.set_instance(hostname, tagged[hostname])
                launched += 1
                db.record_operation_progress(operation_id, done=1)
                continue
            if hostname in tagged:
                # An instance whose row is gone: its token is lost, so it is replaced.
                ec2.terminate_instances(InstanceIds=[tagged[hostname]])
            token = mint_token()
            token_hash = hash_token(token)
            if hostname in rows:
                db.set_token_hash(hostname, token_hash)
            else:
                db.insert_vm(hostname, status=VmStatus.INITIALIZING, token_hash=token_hash)
            db.update_vm_metrics(hostname, {"terraform_apply_start": time.time()})
            request = {
                "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "$Latest"},
                "MinCount": 1,
                "MaxCount": 1,
                "ClientToken": client_token(operation_id, hostname, token_hash),
                "UserData": render_user_data(cfg, hostname=hostname, token=token, api_url=api_url, listener_url=listener_url),
                "TagSpecifications": [
                    {
                        "ResourceType": resource,
                        "Tags": [
                            {"Key": "Name", "Value": hostname},
                            {"Key": TAG_DEPLOYMENT, "Value": environment},
                            {"Key": TAG_HOSTNAME, "Value": hostname},
                            {"Key": TAG_OPERATION, "Value": operation_id},
                        ],
                    }
                    for resource in ("instance", "volume")
                ],
            }
            if subnets:
                request["SubnetId"] = subnets[index % len(subnets)]
            instance_id = ec2.run_instances(**request)["Instances"][0]["InstanceId"]
            db.set_instance(hostname, instance_id)
            # Phase 1 ends when EC2 has accepted the instance (it then boots: phase 2).
            db.update_vm_metrics(hostname, {"terraform_apply_end": time.time()})
            db.record_operation_progress(operation_id, done=1)
            launched += 1
        except Exception as error:
            logger.exception("launch failed", extra={"hostname": hostname, "operation_id": operation_id})
            failed += 1
            if db.vm_exists(hostname):
                db.update_vm_status(hostname, VmStatus.ERROR)
            db.record_operation_progress(operation_id, failed=1, error=f"{hostname}: {error}"[:1000])
    if launched:
        metrics.add_metric(name="VMsLaunched", unit=MetricUnit.Count, value=launched)
        metrics.flush_metrics()
    result = {"launched": launched, "failed": failed, "skipped": skipped}
    logger.info("launch step finished", extra={"operation_id": operation_id, **result})
    return result


def destroy_vms(db: Database, cfg: LablinkConfig, operation_id: str, hostnames: list[str], *, everything: bool) -> dict:
    """Terminate the VMs' instances (with every instance of the deployment when destroying
    everything, so none is left behind), mark their rows terminated, then remove them."""
    from botocore.exceptions import ClientError

    ec2 = _ec2(cfg)
    instance_ids = {iid for iid in db.get_instance_ids(hostnames).values() if iid}
    instance_ids |= set(live_instances(ec2, cfg.app.environment, None if everything else hostnames).values())
    try:
        _terminate(ec2, sorted(instance_ids), ClientError)
    except ClientError as error:
        logger.exception("terminate failed", extra={"operation_id": operation_id})
        db.record_operation_progress(operation_id, failed=len(hostnames), error=f"terminate failed: {error}"[:1000])
        return {"terminated": 0, "removed": 0}
    db.mark_vms_terminated(hostnames)
    removed = db.delete_vms(hostnames)
    db.record_operation_progress(operation_id, done=len(hostnames))
    result = {"terminated": len(instance_ids), "removed": removed}
    logger.info("destroy step finished", extra={"operation_id": operation_id, **result})
    return result


def _terminate(ec2, instance_ids: list[str], client_error: type[Exception]) -> None:
    for start in range(0, len(instance_ids), 500):
        chunk = instance_ids[start : start + 500]
        try:
            ec2.terminate_instances(InstanceIds=chunk)
        except client_error as error:
            if error.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
                raise
            # Some ids are gone already (terminated long ago): terminate the rest one by one.
            for instance_id in chunk:
                try:
                    ec2.terminate_instances(InstanceIds=[instance_id])
                except client_error as single:
                    if single.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
                        raise
