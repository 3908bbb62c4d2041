"""A launch against EC2's refusals (issue 13 item 5): throttling and capacity errors are
retried with backoff, a VM that still fails carries EC2's reason on its operation, and a
launch step that runs again after its operation ended starts nothing.

moto throttles nothing and never runs out of capacity or quota, so EC2's answers are put on
the wire: the step's real EC2 client sends its RunInstances requests, and where AWS would
refuse one, the test answers with what EC2 sends (error code, message and HTTP status: 503
for RequestLimitExceeded, 500 for InsufficientInstanceCapacity, a server error, 400 for the
quota errors); every other request reaches the emulator. botocore's retry logic, not a stub
of it, decides what is tried again."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import boto3
import pytest
from api_support import ADMIN, CONFIG, ENVIRONMENT, instances_of
from botocore.awsrequest import AWSResponse
from db_probe import ledger_types, row_count
from moto.core.models import botocore_stubber

from lablink import runtime
from lablink.db.connection import database_url
from lablink.db.database import Database
from lablink.fleet import dispatch, steps

ATTEMPTS = 3  # fleet.launch_attempts in these tests (the default, 5, would make them slow)
MESSAGES = {
    "RequestLimitExceeded": ("Request limit exceeded.", 503),
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-west-2a).",
        500,
    ),
    "VcpuLimitExceeded": ("You have requested more vCPU capacity than your current vCPU limit of 64 allows.", 400),
}
Refusal = Callable[[dict[str, str]], str | None]  # a RunInstances request's fields -> EC2's error code, or None


class _Body(io.BytesIO):
    def stream(self, **_):
        yield self.read()


def ec2_error(url: str, code: str) -> AWSResponse:
    message, status = MESSAGES[code]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
    return AWSResponse(url, status, {}, _Body(body.encode()))


@pytest.fixture
def ec2(api_env, monkeypatch):
    monkeypatch.setenv(
        "LABLINK_CONFIG_JSON", json.dumps(CONFIG | {"fleet": CONFIG["fleet"] | {"launch_attempts": ATTEMPTS}})
    )
    return boto3.client("ec2", region_name="us-west-2")


def refuse(monkeypatch, refusal: Refusal) -> list[tuple[float, dict[str, str]]]:
    """Answer the steps' RunInstances requests with ``refusal``'s error where it names one;
    returns (time, fields) of every RunInstances request sent, retries included."""
    sent: list[tuple[float, dict[str, str]]] = []
    original = boto3.client

    def answer(event_name, request, **kwargs):
        if event_name.endswith(".RunInstances"):
            fields = {
                key: values[0]
                for key, values in parse_qs(
                    request.body if isinstance(request.body, str) else request.body.decode()
                ).items()
            }
            sent.append((time.monotonic(), fields))
            code = refusal(fields)
            if code:
                return ec2_error(request.url, code)
        return botocore_stubber(event_name=event_name, request=request, **kwargs)

    def client(name, *args, **kwargs):
        made = original(name, *args, **kwargs)
        if name == "ec2":
            made.meta.events.unregister("before-send", botocore_stubber)
            made.meta.events.register("before-send", answer)
        return made

    monkeypatch.setattr(boto3, "client", client)
    return sent


def hostname_of(fields: dict[str, str]) -> str:
    return fields["TagSpecification.1.Tag.1.Value"]  # the Name tag, first of instance_tags


def launch(gateway, provisioner, n: int) -> dict:
    answer = gateway.request("POST", "/api/launch", json_body={"num_vms": n}, headers=ADMIN)
    assert answer.status == 202, answer.text
    assert provisioner.wait(120)
    operation = gateway.request("GET", f"/api/operations/{answer.json()['operation_id']}", headers=ADMIN)
    return operation.json()


def test_throttled_requests_are_sent_again_with_their_client_token_and_every_vm_launches(
    gateway, provisioner, ec2, monkeypatch
):
    throttled = iter([True, True])
    sent = refuse(monkeypatch, lambda _: "RequestLimitExceeded" if next(throttled, False) else None)
    operation = launch(gateway, provisioner, 3)
    assert operation["status"] == "succeeded" and operation["done"] == 3
    assert len(instances_of(ec2, ENVIRONMENT)) == 3
    tokens = [fields["ClientToken"] for _, fields in sent]
    assert len(tokens) == 5  # two throttled, three accepted
    for token in tokens[:2]:
        assert tokens.count(token) >= 2  # sent again as the same request: one launch in AWS


def test_a_capacity_error_that_persists_fails_that_vm_with_ec2s_reason(gateway, provisioner, db, ec2, monkeypatch):
    short = f"lablink-vm-{ENVIRONMENT}-2"
    sent = refuse(monkeypatch, lambda fields: "InsufficientInstanceCapacity" if hostname_of(fields) == short else None)
    operation = launch(gateway, provisioner, 3)
    assert operation["status"] == "partial" and (operation["done"], operation["failed"]) == (2, 1)
    assert short in operation["error"] and "InsufficientInstanceCapacity" in operation["error"]
    assert "sufficient t3.micro capacity" in operation["error"]  # EC2's own words reach the admin
    assert sum(1 for _, fields in sent if hostname_of(fields) == short) == ATTEMPTS
    assert db.vms.get(short)["status"] == "error"
    launched = {t["Value"] for i in instances_of(ec2, ENVIRONMENT) for t in i["Tags"] if t["Key"] == "lablink:hostname"}
    assert launched == {f"lablink-vm-{ENVIRONMENT}-1", f"lablink-vm-{ENVIRONMENT}-3"}


def test_a_quota_error_is_tried_again_after_a_backoff(gateway, provisioner, ec2, monkeypatch):
    refusals = iter(["VcpuLimitExceeded"])
    sent = refuse(monkeypatch, lambda _: next(refusals, None))
    operation = launch(gateway, provisioner, 1)
    assert operation["status"] == "succeeded"
    assert len(sent) == 2
    assert sent[1][0] - sent[0][0] >= 1.0  # exponential backoff: its first wait is at least 1 s


def test_a_quota_error_that_persists_fails_the_vm_after_its_attempts(gateway, provisioner, ec2, monkeypatch):
    sent = refuse(monkeypatch, lambda _: "VcpuLimitExceeded")
    operation = launch(gateway, provisioner, 1)
    assert operation["status"] == "failed" and "VcpuLimitExceeded" in operation["error"]
    assert len(sent) == ATTEMPTS
    assert instances_of(ec2, ENVIRONMENT) == []


@pytest.fixture
def held(api_env):
    """A dispatcher that keeps the steps' payloads; the test runs each when it chooses."""
    payloads: list[dict] = []
    dispatch.set_dispatcher(payloads.append)
    return payloads


def test_a_late_run_of_a_launch_declared_dead_starts_nothing(gateway, held, db, ec2):
    """Lambda may deliver an asynchronous event again hours later (up to 6 h, with retries),
    after the reconciler failed the operation and freed its hostnames."""
    accepted = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN).json()
    reason = "no progress for 900 s: its step died"
    assert db.operations.abandon_stalled_operations(datetime.now(UTC) + timedelta(seconds=1), reason)
    step_db = Database(database_url(), runtime.config().db, actor="provision")
    try:
        result = steps.run_step(held[0], step_db, runtime.config())
    finally:
        step_db.close()
    assert result["launched"] == 0
    assert instances_of(ec2, ENVIRONMENT) == [] and row_count(db) == 0
    operation = db.operations.get(accepted["operation_id"])
    assert operation["status"] == "failed" and operation["error"] == reason


def test_the_instance_ledger_records_each_instances_type(gateway, provisioner, db, ec2):
    operation = launch(gateway, provisioner, 2)
    assert operation["status"] == "succeeded"
    machine_type = runtime.config().machine.machine_type
    assert ledger_types(db) == {hostname: machine_type for hostname in operation["hostnames"]}
