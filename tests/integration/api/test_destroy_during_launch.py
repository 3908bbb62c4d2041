""" "Destroy all" while a launch is creating VMs (issue 12 item 6): the destroy step runs at a
chosen moment inside the launch step (a hook on moto's RunInstances), and no instance, row or
running launch is left whatever that moment is. A destroy naming an unknown hostname is 404."""

from __future__ import annotations

import boto3
import pytest
from api_support import ADMIN, ENVIRONMENT, instances_of
from botocore.exceptions import ClientError
from db_probe import row_count

from lablink import runtime
from lablink.db.connection import database_url
from lablink.db.database import Database
from lablink.fleet import dispatch, steps
from lablink.fleet import ec2 as fleet_ec2


@pytest.fixture
def ec2(api_env):
    return boto3.client("ec2", region_name="us-west-2")


@pytest.fixture
def held(api_env):
    """A dispatcher that keeps the steps' payloads; the test runs each when it chooses."""
    payloads: list[dict] = []
    dispatch.set_dispatcher(payloads.append)
    return payloads


def run(payload: dict) -> dict:
    """One step on a connection of its own, as the provisioning function has."""
    db = Database(database_url(), runtime.config().db, actor="provision")
    try:
        return steps.run_step(payload, db, runtime.config())
    finally:
        db.close()


def on_first_run_instances(monkeypatch, event: str, action) -> None:
    """Call ``action`` once, at ``event`` ("before-call": no instance exists yet; "after-call":
    EC2 has started it, the step has not recorded it) of the steps' first RunInstances."""
    original = boto3.client
    done: list[bool] = []

    def hook(**_):
        if not done:
            done.append(True)
            action()

    def hooked_client(name, *args, **kwargs):
        client = original(name, *args, **kwargs)
        if name == "ec2":
            client.meta.events.register(f"{event}.ec2.RunInstances", hook)
        return client

    monkeypatch.setattr(boto3, "client", hooked_client)


@pytest.mark.parametrize("event", ["before-call", "after-call"])
def test_destroy_all_between_run_instances_calls_leaves_nothing(gateway, held, db, ec2, monkeypatch, event):
    launch = gateway.request("POST", "/api/launch", json_body={"num_vms": 3}, headers=ADMIN).json()
    destroys: list[dict] = []

    def destroy_all_now() -> None:
        answer = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN)
        assert answer.status == 202
        destroys.append(run(held[-1]))

    on_first_run_instances(monkeypatch, event, destroy_all_now)
    result = run(held[0])
    assert destroys, "the destroy ran inside the launch step"
    # The first VM was taken. The other two launch in parallel with it: each was recorded
    # before the destroy took every row (and destroyed with it), withdrawn, or never started.
    assert result["withdrawn"] >= 1
    assert instances_of(ec2, ENVIRONMENT) == []
    assert row_count(db) == 0
    cancelled = db.operations.get(launch["operation_id"])
    assert cancelled["status"] == "cancelled" and "destroy-all" in cancelled["error"]
    # Lambda may run the cancelled step again: it starts nothing.
    assert run(held[0])["launched"] == 0
    assert instances_of(ec2, ENVIRONMENT) == []


def test_destroy_all_during_a_launch_of_12_leaves_no_instance(gateway, provisioner, db, ec2):
    """Both steps in threads, as in the local stack: the issue's reproduction."""
    assert gateway.request("POST", "/api/launch", json_body={"num_vms": 12}, headers=ADMIN).status == 202
    assert gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN).status == 202
    assert provisioner.wait(120)
    assert instances_of(ec2, ENVIRONMENT) == []
    assert row_count(db) == 0


def test_destroy_all_cancels_the_launches_in_flight_when_its_step_runs_only(gateway, held, db, ec2):
    """What counts is when the destroy step runs: a launch asked before it is cancelled, a later one is not."""
    gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN)
    launch = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN).json()
    run(held[0])  # the destroy step runs after the launch was asked, before its step
    run(held[1])
    assert db.operations.get(launch["operation_id"])["status"] == "cancelled"  # it was in flight: cancelled
    later = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN).json()
    assert run(held[2])["launched"] == 2
    assert db.operations.get(later["operation_id"])["status"] == "succeeded"
    assert len(instances_of(ec2, ENVIRONMENT)) == 2


def _orphan_instance(ec2, launch_template: str) -> str:
    """An instance tagged for the deployment whose VM has no row (a launch step died before
    recording it): a destroy-all of an empty table still has it to terminate."""
    tags = fleet_ec2.instance_tags(ENVIRONMENT, f"lablink-vm-{ENVIRONMENT}-5", "a-dead-launch")
    reservation = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": launch_template},
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )
    return reservation["Instances"][0]["InstanceId"]


def test_destroy_all_of_no_rows_is_running_until_its_step_has_ended(
    gateway, held, db, ec2, launch_template, monkeypatch
):
    """With no row it has no hostname to count, so it once read "succeeded" the moment its step
    began: `--wait`, the dashboard and the next request went on while it still had to cancel
    launches and terminate instances (a launch asked then was cancelled)."""
    _orphan_instance(ec2, launch_template)
    destroy = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN).json()
    seen: list[str] = []
    real_terminate = steps.fleet_ec2.terminate

    def terminate(client, instance_ids):
        seen.append(db.operations.get(destroy["operation_id"])["status"])
        return real_terminate(client, instance_ids)

    monkeypatch.setattr(steps.fleet_ec2, "terminate", terminate)
    run(held[0])
    assert seen == ["running"]
    assert db.operations.get(destroy["operation_id"])["status"] == "succeeded"
    assert instances_of(ec2, ENVIRONMENT) == []


def test_a_destroy_all_whose_terminate_fails_is_failed(gateway, held, db, ec2, launch_template, monkeypatch):
    _orphan_instance(ec2, launch_template)
    destroy = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN).json()

    def refuse(client, instance_ids):
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}, "TerminateInstances")

    monkeypatch.setattr(steps.fleet_ec2, "terminate", refuse)
    run(held[0])
    found = db.operations.get(destroy["operation_id"])
    assert found["status"] == "failed" and "UnauthorizedOperation" in found["error"]
    assert len(instances_of(ec2, ENVIRONMENT)) == 1


@pytest.mark.parametrize("everything", [True, False], ids=["destroy all", "destroy named"])
def test_a_destroy_step_delivered_again_after_it_ended_destroys_nothing(gateway, held, db, ec2, everything):
    """Lambda delivers an asynchronous event at least once, and may again hours later. A second
    run of an ended destroy must not cancel a later launch nor take the VMs made since (a
    hostname freed by a destroy can be given again)."""
    first = gateway.request("POST", "/api/launch", json_body={"num_vms": 1}, headers=ADMIN).json()
    run(held[0])
    body = {} if everything else {"hostnames": first["hostnames"]}
    assert gateway.request("POST", "/api/destroy", json_body=body, headers=ADMIN).status == 202
    run(held[1])
    later = gateway.request("POST", "/api/launch", json_body={"num_vms": 1}, headers=ADMIN).json()
    assert later["hostnames"] == first["hostnames"]  # the freed hostname is given again
    run(held[2])
    assert run(held[1]) == {"terminated": 0, "removed": 0}  # the destroy again
    assert db.operations.get(later["operation_id"])["status"] == "succeeded"
    assert db.vms.list_hostnames() == later["hostnames"]
    assert len(instances_of(ec2, ENVIRONMENT)) == 1


def test_destroy_of_unknown_hostnames_is_404_naming_them(gateway, held, db, ec2):
    known = f"lablink-vm-{ENVIRONMENT}-1"
    db.vms.insert(known)
    answer = gateway.request(
        "POST",
        "/api/destroy",
        json_body={"hostnames": [known, f"lablink-vm-{ENVIRONMENT}-8", f"lablink-vm-{ENVIRONMENT}-9"]},
        headers=ADMIN,
    )
    assert answer.status == 404
    assert (
        answer.json()["error"]
        == f"No VM has the hostname lablink-vm-{ENVIRONMENT}-8, lablink-vm-{ENVIRONMENT}-9; nothing was destroyed."
    )
    assert held == [] and db.vms.list_hostnames() == [known]
