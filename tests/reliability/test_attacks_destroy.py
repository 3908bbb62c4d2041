"""Issue 12 item 6 as attacks on the whole local stack (real API, provisioning steps in
threads, moto's EC2 server): "destroy all" during a launch leaves no instance running, and a
destroy naming an unknown hostname is refused with 404 and destroys nothing."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import boto3
import pytest

LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def call(stack: dict, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    credentials = base64.b64encode(f"admin:{stack['admin_password']}".encode()).decode()
    request = urllib.request.Request(
        stack["api_url"].rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def finished(stack: dict, operation_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, found = call(stack, "GET", f"/api/operations/{operation_id}")
        assert status == 200, found
        if found["status"] not in ("queued", "running"):
            return found
        time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} still running after {timeout} s")


def live_instance_ids(stack: dict) -> list[str]:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=stack["aws_endpoint_url"],
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}]
    )
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


@pytest.fixture
def stack(api_stack):
    """The module's stack, emptied before each test (destroy all, waited for)."""
    status, accepted = call(api_stack, "POST", "/api/destroy", {})
    assert status == 202, accepted
    finished(api_stack, accepted["operation_id"])
    return api_stack


def test_destroy_all_during_a_launch_leaves_no_instance_running(stack):
    status, launch = call(stack, "POST", "/api/launch", {"num_vms": 12})
    assert status == 202, launch
    status, destroy = call(stack, "POST", "/api/destroy", {})
    assert status == 202, destroy
    finished(stack, launch["operation_id"])
    finished(stack, destroy["operation_id"])
    assert live_instance_ids(stack) == []
    assert call(stack, "GET", "/api/vm-status")[1] == {}


def test_destroy_of_an_unknown_hostname_is_refused_and_destroys_nothing(stack):
    status, launch = call(stack, "POST", "/api/launch", {"num_vms": 2})
    assert status == 202, launch
    assert finished(stack, launch["operation_id"])["status"] == "succeeded"
    before = live_instance_ids(stack)
    unknown = "lablink-vm-dev-999"
    status, refused = call(stack, "POST", "/api/destroy", {"hostnames": [launch["hostnames"][0], unknown]})
    assert status == 404 and unknown in refused["error"] and launch["hostnames"][0] not in refused["error"]
    assert sorted(call(stack, "GET", "/api/vm-status")[1]) == sorted(launch["hostnames"])
    assert sorted(live_instance_ids(stack)) == sorted(before) and len(before) == 2
