"""The AWS calls: the provisioning step's EC2 calls (find a deployment's instances by their tags,
start one instance, terminate instances) and the asynchronous Lambda invokes. boto3 and
botocore are imported on first use only: the functions that never call AWS do not pay for
importing them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable

from lablink.environment import DEPLOYMENT_TAG

HOSTNAME_TAG = "lablink:hostname"
OPERATION_TAG = "lablink:operation"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
# EC2's limits: values of one describe filter, instance ids of one terminate call.
FILTER_VALUES_MAX = 190
TERMINATE_MAX = 500
# Account quota errors of RunInstances: client errors (HTTP 400) that botocore never retries.
# A quota can free up within seconds (a recycle terminates an instance as it launches one),
# so they are tried again a few times, then the VM fails with EC2's reason.
QUOTA_ERRORS = frozenset({"InstanceLimitExceeded", "VcpuLimitExceeded"})


def aws_client(service: str, region: str | None = None, config=None):
    """A boto3 client (``config``: a botocore Config), its calls traced by X-Ray (botocore is
    patched on first use)."""
    import boto3

    from lablink.observability import tracer

    tracer.patch(["botocore"])
    return boto3.client(service, region_name=region, config=config)


def invoke_async(function_variable: str, payload: bytes, config=None) -> None:
    """An asynchronous ("Event") Lambda invoke of the function named by the environment
    variable ``function_variable`` (``config``: a botocore Config for the Lambda client)."""
    function = os.environ.get(function_variable)
    if not function:
        raise RuntimeError(f"{function_variable} is not set")
    aws_client("lambda", config=config).invoke(FunctionName=function, InvocationType="Event", Payload=payload)


def launch_client(region: str, *, concurrency: int, attempts: int):
    """The EC2 client of a launch step, shared by its ``concurrency`` threads (boto3 clients
    are thread-safe). botocore's "standard" retry mode tries each call up to ``attempts``
    times with exponential backoff and full jitter (capped at 20 s) on throttling
    (RequestLimitExceeded) and on server errors, InsufficientInstanceCapacity among them
    (EC2 answers it with HTTP 500)."""
    from botocore.config import Config

    # total_max_attempts counts the first try (a client Config's max_attempts counts retries only).
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, max_pool_connections=concurrency)
    return aws_client("ec2", region, config)


def client_token(operation_id: str, hostname: str, token_hash: str) -> str:
    """Idempotency key of one RunInstances call (64 characters at most)."""
    return hashlib.sha256(f"{operation_id}:{hostname}:{token_hash}".encode()).hexdigest()[:64]


def live_instances(
    ec2, environment: str, hostnames: Iterable[str] | None = None, *, excluding_operations: Collection[str] = ()
) -> dict[str, str]:
    """hostname -> id of the deployment's instances that are not terminated (or terminating),
    leaving out those tagged with one of ``excluding_operations``."""
    filters = [{"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [environment]}, {"Name": "instance-state-name", "Values": LIVE_STATES}]
    names = None if hostnames is None else list(hostnames)
    chunks = [None] if names is None else [names[i : i + FILTER_VALUES_MAX] for i in range(0, len(names), FILTER_VALUES_MAX)]
    found: dict[str, str] = {}
    for chunk in chunks:
        chunk_filters = filters if chunk is None else filters + [{"Name": f"tag:{HOSTNAME_TAG}", "Values": chunk}]
        for page in ec2.get_paginator("describe_instances").paginate(Filters=chunk_filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if HOSTNAME_TAG in tags and tags.get(OPERATION_TAG) not in excluding_operations:
                        found[tags[HOSTNAME_TAG]] = instance["InstanceId"]
    return found


def instance_tags(environment: str, hostname: str, operation_id: str) -> dict[str, str]:
    """The tags of a VM's instance and volume: the deployment, the VM, the operation."""
    return {"Name": hostname, DEPLOYMENT_TAG: environment, HOSTNAME_TAG: hostname, OPERATION_TAG: operation_id}


def run_instance(
    ec2,
    *,
    template_id: str,
    client_token: str,
    user_data: str | bytes,
    tags: dict[str, str],
    subnet_id: str | None,
    attempts: int = 1,
) -> str:
    """Start one instance from the launch template; returns its id. A quota error is tried
    up to ``attempts`` times, with exponential backoff and jitter."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    request = {
        "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "$Latest"},
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": client_token,
        "UserData": user_data,
        "TagSpecifications": [
            {"ResourceType": resource, "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
            for resource in ("instance", "volume")
        ],
    }
    if subnet_id:
        request["SubnetId"] = subnet_id
    retrying = Retrying(
        retry=retry_if_exception(_over_quota),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=1, max=20),
        reraise=True,
    )
    return retrying(ec2.run_instances, **request)["Instances"][0]["InstanceId"]


def terminate(ec2, instance_ids: list[str]) -> None:
    """Terminate the instances; ids EC2 no longer knows (terminated long ago) are skipped."""
    from botocore.exceptions import ClientError

    for start in range(0, len(instance_ids), TERMINATE_MAX):
        chunk = instance_ids[start : start + TERMINATE_MAX]
        try:
            ec2.terminate_instances(InstanceIds=chunk)
        except ClientError as error:
            if not _not_found(error):
                raise
            # Some ids are gone already: terminate the rest one by one.
            for instance_id in chunk:
                try:
                    ec2.terminate_instances(InstanceIds=[instance_id])
                except ClientError as single:
                    if not _not_found(single):
                        raise


def _not_found(error) -> bool:
    return error.response["Error"]["Code"] == "InvalidInstanceID.NotFound"


def _over_quota(error: BaseException) -> bool:
    response = getattr(error, "response", None)  # a botocore ClientError
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in QUOTA_ERRORS


def reboot(ec2, instance_ids: list[str]) -> None:
    """Reboot the instances (EC2 keeps them, their volumes and their addresses)."""
    for start in range(0, len(instance_ids), TERMINATE_MAX):
        ec2.reboot_instances(InstanceIds=instance_ids[start : start + TERMINATE_MAX])
