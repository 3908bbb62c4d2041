"""Launch and destroy on moto's EC2: 50 instances with the right tags and user data, one row
each; a rerun of the same provisioning step starts nothing new; destroy twice is harmless."""

from __future__ import annotations

import json

import boto3
import pytest
from api_support import ADMIN, ENVIRONMENT, instances_of, token_in_user_data, user_data_of
from db_probe import audit_trail, row_count, token_hash

from lablink import runtime
from lablink.fleet import dispatch, steps


@pytest.fixture
def ec2(api_env):
    return boto3.client("ec2", region_name="us-west-2")


def launch(gateway, provisioner, n: int) -> dict:
    answer = gateway.request("POST", "/api/launch", json_body={"num_vms": n}, headers=ADMIN)
    assert answer.status == 202, answer.text
    assert provisioner.wait(120)
    return answer.json()


def operation(gateway, operation_id: str) -> dict:
    return gateway.request("GET", f"/api/operations/{operation_id}", headers=ADMIN).json()


def test_launch_50_then_rerun_then_destroy_twice(gateway, provisioner, db, ec2):
    accepted = launch(gateway, provisioner, 50)
    hostnames = [f"lablink-vm-{ENVIRONMENT}-{n}" for n in range(1, 51)]
    assert accepted["hostnames"] == hostnames
    assert operation(gateway, accepted["operation_id"])["status"] == "succeeded"

    instances = instances_of(ec2, ENVIRONMENT)
    assert len(instances) == 50
    rows = {vm["hostname"]: vm for vm in db.vms.list_all()}
    assert sorted(rows) == sorted(hostnames)
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        hostname = tags["lablink:hostname"]
        assert tags["Name"] == hostname and tags["lablink:deployment"] == ENVIRONMENT
        assert tags["lablink:operation"] == accepted["operation_id"]
        row = rows[hostname]
        assert row["instance_id"] == instance["InstanceId"]
        assert row["status"] == "initializing"
        assert row["terraformapplystarttime"] is not None and row["terraformapplydurationseconds"] >= 0
        user_data = user_data_of(ec2, instance["InstanceId"])
        assert hostname in user_data and "https://api.example.test/prod" in user_data
        assert token_in_user_data(user_data, token_hash(db, hostname)) is not None
    # Every VM has its own token.
    assert len({token_hash(db, h) for h in hostnames}) == 50

    # Lambda may run an asynchronous step again: nothing new starts, progress is not recounted.
    payload = {"kind": "launch", "operation_id": accepted["operation_id"], "hostnames": hostnames}
    result = steps.run_step(payload, runtime.database("test"), runtime.config())
    assert result == {"launched": 0, "failed": 0, "skipped": 50, "withdrawn": 0}
    assert len(instances_of(ec2, ENVIRONMENT)) == 50
    assert operation(gateway, accepted["operation_id"])["done"] == 50

    first = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN)
    assert first.status == 202 and len(first.json()["hostnames"]) == 50
    assert provisioner.wait(120)
    assert operation(gateway, first.json()["operation_id"])["status"] == "succeeded"
    assert instances_of(ec2, ENVIRONMENT) == []
    assert row_count(db) == 0
    audit = audit_trail(db, "lablink-vm-test-7")
    assert [a["new_status"] for a in audit if a["action"] == "UPDATE"][-1] == "terminated"
    assert audit[-1]["action"] == "DELETE"

    second = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN)
    assert second.status == 202 and second.json()["hostnames"] == []
    assert provisioner.wait(30)
    assert operation(gateway, second.json()["operation_id"])["status"] == "succeeded"

    # Numbering starts again once the fleet is gone.
    assert launch(gateway, provisioner, 1)["hostnames"] == [f"lablink-vm-{ENVIRONMENT}-1"]


def test_a_step_interrupted_after_run_instances_adopts_the_instance(gateway, provisioner, db, ec2):
    """The step died after RunInstances but before recording the instance: the rerun finds
    the tagged instance instead of starting a second one."""
    accepted = launch(gateway, provisioner, 2)
    hostname = accepted["hostnames"][0]
    instance_id = db.vms.get_instance_ids([hostname])[hostname]
    db.vms.set_instance(hostname, None)  # as if the step had stopped before set_instance
    result = steps.run_step(
        {"kind": "launch", "operation_id": accepted["operation_id"], "hostnames": accepted["hostnames"]},
        runtime.database("test"),
        runtime.config(),
    )
    assert result["launched"] == 1 and result["skipped"] == 1
    assert db.vms.get_instance_ids([hostname])[hostname] == instance_id
    assert len(instances_of(ec2, ENVIRONMENT)) == 2


def test_numbers_continue_after_the_highest(gateway, provisioner, db, ec2):
    db.vms.insert(f"lablink-vm-{ENVIRONMENT}-7")
    assert launch(gateway, provisioner, 2)["hostnames"] == [f"lablink-vm-{ENVIRONMENT}-8", f"lablink-vm-{ENVIRONMENT}-9"]


def test_destroy_named_vms_only(gateway, provisioner, db, ec2):
    accepted = launch(gateway, provisioner, 3)
    keep = accepted["hostnames"][2]
    answer = gateway.request("POST", "/api/destroy", json_body={"hostnames": accepted["hostnames"][:2]}, headers=ADMIN)
    assert answer.status == 202
    assert provisioner.wait(30)
    assert db.vms.list_hostnames() == [keep]
    assert [{t["Key"]: t["Value"] for t in i["Tags"]}["lablink:hostname"] for i in instances_of(ec2, ENVIRONMENT)] == [keep]


def test_fleet_maximum_refuses_with_409(gateway, provisioner, db, ec2, monkeypatch):
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({"app": {"environment": ENVIRONMENT}, "fleet": {"max_launch_per_request": 5, "max_vms": 6}}))
    launch(gateway, provisioner, 5)
    refused = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN)
    assert refused.status == 409 and "maximum of 6" in refused.json()["error"]
    assert row_count(db) == 5


def test_run_instances_failure_is_recorded(gateway, provisioner, db, ec2, monkeypatch):
    monkeypatch.setenv("LAUNCH_TEMPLATE_ID", "lt-0000000000does0not")
    accepted = launch(gateway, provisioner, 2)
    found = operation(gateway, accepted["operation_id"])
    assert (found["status"], found["done"], found["failed"]) == ("failed", 0, 2)
    # launches run in parallel, so whichever failed last is the one kept
    assert any(hostname in found["error"] for hostname in accepted["hostnames"])
    assert {vm["status"] for vm in db.vms.list_all()} == {"error"}
    assert instances_of(ec2, ENVIRONMENT) == []


def test_start_async_invokes_the_provisioning_function(api_env, monkeypatch):
    """In AWS the step is an asynchronous Lambda invoke of $PROVISION_FUNCTION_NAME."""
    import io
    import zipfile

    iam = boto3.client("iam", region_name="us-west-2")
    role = iam.create_role(RoleName="provision", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    lam = boto3.client("lambda", region_name="us-west-2")
    lam.create_function(FunctionName="lablink-provision", Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": code.getvalue()})
    dispatch.set_dispatcher(None)  # the dispatcher of a deployment, not the test's in-process one
    monkeypatch.setenv("PROVISION_FUNCTION_NAME", "lablink-provision")
    calls = []
    original = boto3.client

    def recording_client(name, *args, **kwargs):
        client = original(name, *args, **kwargs)
        if name == "lambda":
            client.meta.events.register("before-call.lambda.Invoke", lambda params, **_: calls.append(params))
        return client

    monkeypatch.setattr(boto3, "client", recording_client)
    dispatch.start_async({"kind": "launch", "operation_id": "op-1", "hostnames": ["lablink-vm-test-1"]})
    assert len(calls) == 1
    assert calls[0]["headers"]["X-Amz-Invocation-Type"] == "Event"
    assert json.loads(calls[0]["body"]) == {"kind": "launch", "operation_id": "op-1", "hostnames": ["lablink-vm-test-1"]}
    assert "lablink-provision" in calls[0]["url_path"]
