""" "Destroy all" while a launch is creating VMs (issue 12 item 6): the destroy step runs at a
chosen moment inside the launch step (a hook on moto's RunInstances), and no instance, row or
running launch is left whatever that moment is. A destroy naming an unknown hostname is 404."""

from __future__ import annotations

import boto3
import pytest
from api_support import ADMIN, ENVIRONMENT, instances_of
from db_probe import row_count

from lablink import runtime
from lablink.db.connection import database_url
from lablink.db.database import Database
from lablink.fleet import dispatch, steps


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
