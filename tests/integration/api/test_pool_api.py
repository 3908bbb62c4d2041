"""The pool's admin routes through the API Gateway emulator: the policy (GET/PUT /api/pool),
its status, the history of every assignment, and recycling or rebooting one VM, on a real
PostgreSQL with EC2 on moto and the provisioning step inline."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import boto3
import pytest
from api_support import ADMIN, ENVIRONMENT, instances_of
from db_probe import operation_kinds

from lablink import runtime
from lablink.api.models import PoolPolicyChange
from lablink.config import PoolConfig
from lablink.fleet import dispatch
from lablink.pool.reconciler import Ec2Fleet, reconcile
from lablink.pool.reports import HISTORY_COLUMNS

COMMAND = "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=4/0Abc-def_ghi"


@pytest.fixture
def ec2(api_env):
    return boto3.client("ec2", region_name="us-west-2")


def _running_vms(gateway, provisioner, db, n: int) -> list[str]:
    """Launch n VMs through the API; each then reports 'running' as its agent would."""
    answer = gateway.request("POST", "/api/launch", json_body={"num_vms": n}, headers=ADMIN)
    assert answer.status == 202, answer.text
    assert provisioner.wait(60)
    hostnames = answer.json()["hostnames"]
    for hostname in hostnames:
        db.vms.set_status(hostname, "running")
    return hostnames


def _history(gateway) -> list[dict]:
    answer = gateway.request("GET", "/api/history", headers=ADMIN)
    assert answer.status == 200, answer.text
    return answer.json()["history"]


def test_a_policy_change_may_name_every_field_of_the_policy():
    assert set(PoolPolicyChange.model_fields) == set(PoolConfig.model_fields)


def test_policy_starts_as_the_configuration_and_a_change_is_stored_whole(gateway):
    policy = gateway.request("GET", "/api/pool", headers=ADMIN).json()
    assert policy == runtime.config().pool.model_dump(mode="json")

    answer = gateway.request(
        "PUT", "/api/pool", json_body={"min_free": 3, "closes_at": "2026-03-02T17:00:00+01:00"}, headers=ADMIN
    )
    assert answer.status == 200, answer.text
    stored = answer.json()
    assert stored["min_free"] == 3 and stored["closes_at"] == "2026-03-02T16:00:00Z"
    assert stored["max_vms"] == policy["max_vms"]  # fields not sent keep their value
    assert gateway.request("GET", "/api/pool", headers=ADMIN).json() == stored


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"min_free": 600, "max_vms": 500}, "min_free may not exceed max_vms"),
        ({"opens_at": "2026-03-02T18:00:00Z", "closes_at": "2026-03-02T09:00:00Z"}, "opens_at must come before"),
        ({"opens_at": "2026-03-02T09:00:00"}, "time zone"),
        ({"unhealthy_after_s": 0}, "greater than or equal to 1"),
        ({"min_free": "5"}, "valid integer"),  # strict: no "5" for 5
        ({"paused": None}, "boolean"),
        ({"idle_timeout_s": 2**40}, "less than or equal to 31622400"),  # not a database overflow (500)
    ],
)
def test_an_invalid_policy_is_refused_with_its_reason_and_nothing_changes(gateway, change, reason):
    before = gateway.request("GET", "/api/pool", headers=ADMIN).json()
    answer = gateway.request("PUT", "/api/pool", json_body=change, headers=ADMIN)
    assert answer.status == 422, answer.text
    assert reason in answer.json()["error"]
    assert gateway.request("GET", "/api/pool", headers=ADMIN).json() == before


def test_a_policy_change_takes_effect_at_the_next_reconcile(gateway, provisioner, db, ec2):
    assert gateway.request("PUT", "/api/pool", json_body={"min_free": 2}, headers=ADMIN).status == 200
    result = reconcile(runtime.database("test"), Ec2Fleet(ec2, ENVIRONMENT), runtime.config(), datetime.now(UTC))
    assert provisioner.wait(60)
    assert [a.action for a in result.actions] == ["launch"]
    assert len(instances_of(ec2, ENVIRONMENT)) == 2

    status = gateway.request("GET", "/api/pool/status", headers=ADMIN).json()
    assert (status["booting"], status["free"], status["target_free"]) == (2, 0, 2)
    assert status["last_reconcile_at"].endswith("Z")
    assert status["actions"][0]["action"] == "launch" and "launching 2" in status["actions"][0]["reason"]


def test_status_counts_the_pool_and_shows_failed_operations(gateway, provisioner, db, monkeypatch):
    *_, broken = _running_vms(gateway, provisioner, db, 3)
    db.assignments.claim("ada@example.org", COMMAND)
    db.vms.set_health(broken, "Unhealthy")
    # A launch EC2 cannot serve: its error reaches the pool status.
    monkeypatch.delenv("LAUNCH_TEMPLATE_ID")
    assert gateway.request("POST", "/api/launch", json_body={"num_vms": 1}, headers=ADMIN).status == 202
    assert provisioner.wait(60)

    status = gateway.request("GET", "/api/pool/status", headers=ADMIN).json()
    assert {k: status[k] for k in ("free", "assigned", "booting", "unhealthy", "target_free")} == {
        "free": 2,  # the unhealthy one is still running and unassigned: it can be handed out
        "assigned": 1,
        "booting": 0,
        "unhealthy": 1,
        "target_free": 0,
    }
    assert status["cost_usd_so_far"] >= 0 and status["opens_at"] is None
    (failure,) = status["failures"]
    assert failure["kind"] == "launch" and failure["status"] == "failed"
    assert "LAUNCH_TEMPLATE_ID" in failure["error"] and failure["at"].endswith("Z")


def test_recycle_frees_the_email_records_recycled_and_a_fresh_vm_takes_its_place(gateway, provisioner, db, ec2):
    _running_vms(gateway, provisioner, db, 1)
    hostname = db.assignments.claim("ada@example.org", COMMAND).hostname
    old_instance = db.vms.get(hostname)["instance_id"]

    answer = gateway.request("POST", f"/api/vms/{hostname}/recycle", json_body={}, headers=ADMIN)
    assert answer.status == 202, answer.text
    accepted = answer.json()
    assert provisioner.wait(60)
    (fresh,) = accepted["replacement_hostnames"]
    assert fresh != hostname and accepted["hostnames"] == [hostname]
    for operation_id in (accepted["operation_id"], accepted["replacement_operation_id"]):
        assert gateway.request("GET", f"/api/operations/{operation_id}", headers=ADMIN).json()["status"] == "succeeded"

    assert db.vms.get(hostname) is None
    assert [i["InstanceId"] for i in instances_of(ec2, ENVIRONMENT, states=("terminated",))] == [old_instance]
    (entry,) = _history(gateway)
    assert (entry["hostname"], entry["email"], entry["release_reason"]) == (hostname, "ada@example.org", "recycled")
    # The fresh VM boots and is free; the researcher's email may claim again and gets it.
    db.vms.set_status(fresh, "running")
    assert db.assignments.claim("ada@example.org", COMMAND).hostname == fresh
    actions = gateway.request("GET", "/api/pool/status", headers=ADMIN).json()["actions"]
    assert (actions[0]["action"], actions[0]["hostname"]) == ("recycle", hostname)
    assert f"replaced by {fresh}" in actions[0]["reason"]


def test_reboot_keeps_the_assignment(gateway, provisioner, db, ec2):
    _running_vms(gateway, provisioner, db, 1)
    hostname = db.assignments.claim("ada@example.org", COMMAND).hostname
    instance_id = db.vms.get(hostname)["instance_id"]

    answer = gateway.request("POST", f"/api/vms/{hostname}/reboot", json_body={}, headers=ADMIN)
    assert answer.status == 202, answer.text
    assert provisioner.wait(60)
    operation = gateway.request("GET", f"/api/operations/{answer.json()['operation_id']}", headers=ADMIN).json()
    assert (operation["kind"], operation["status"], operation["done"]) == ("reboot", "succeeded", 1)

    vm = db.vms.get(hostname)
    assert (vm["useremail"], vm["instance_id"]) == ("ada@example.org", instance_id)
    assert [i["InstanceId"] for i in instances_of(ec2, ENVIRONMENT)] == [instance_id]
    (entry,) = _history(gateway)
    assert entry["released_at"] is None
    action = gateway.request("GET", "/api/pool/status", headers=ADMIN).json()["actions"][0]
    assert (action["action"], action["hostname"], action["reason"]) == ("reboot", hostname, "requested by an admin")


def test_recycle_and_reboot_of_unknown_vms_and_reboot_before_the_instance_and_recycle_twice(gateway, db):
    for action in ("recycle", "reboot"):
        answer = gateway.request("POST", f"/api/vms/lablink-vm-{ENVIRONMENT}-99/{action}", json_body={}, headers=ADMIN)
        assert answer.status == 404 and "lablink-vm-test-99" in answer.json()["error"]
        assert gateway.request("POST", f"/api/vms/Not_A_Host/{action}", json_body={}, headers=ADMIN).status == 422
    db.vms.insert(f"lablink-vm-{ENVIRONMENT}-1", status="initializing")  # its step has not started the instance
    answer = gateway.request("POST", f"/api/vms/lablink-vm-{ENVIRONMENT}-1/reboot", json_body={}, headers=ADMIN)
    assert answer.status == 409 and "no instance yet" in answer.json()["error"]
    # A destroy of it is under way: recycling it again would launch a second replacement.
    db.operations.create("destroy", [f"lablink-vm-{ENVIRONMENT}-1"])
    answer = gateway.request("POST", f"/api/vms/lablink-vm-{ENVIRONMENT}-1/recycle", json_body={}, headers=ADMIN)
    assert answer.status == 409 and "already being destroyed" in answer.json()["error"]
    assert db.vms.get(f"lablink-vm-{ENVIRONMENT}-1")["useremail"] is None
    assert operation_kinds(db) == ["destroy"]  # no replacement launch


def test_history_survives_destroy_all_as_json_and_csv(gateway, provisioner, db):
    _running_vms(gateway, provisioner, db, 2)
    ada = db.assignments.claim("ada@example.org", COMMAND).hostname
    db.assignments.claim("bob@example.org", COMMAND)
    db.startup.record(ada, {"cloud_init_duration_seconds": 12.345})
    assert gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN).status == 202
    assert provisioner.wait(60)
    assert db.vms.list_all() == []

    entries = _history(gateway)
    assert [(e["email"], e["release_reason"]) for e in entries] == [
        ("ada@example.org", "destroyed"),
        ("bob@example.org", "destroyed"),
    ]
    for entry in entries:
        assert list(entry) == list(HISTORY_COLUMNS)
        assert entry["assigned_at"].endswith("Z") and entry["released_at"].endswith("Z")
        assert entry["instance_type"] == runtime.config().machine.machine_type and entry["cost_usd"] >= 0
    assert entries[0]["cloud_init_s"] == 12.3

    answer = gateway.request("GET", "/api/history?format=csv", headers=ADMIN)
    assert answer.status == 200 and answer.header("Content-Type").startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["email"] for r in rows] == ["ada@example.org", "bob@example.org"]
    assert list(rows[0]) == list(HISTORY_COLUMNS) and rows[0]["release_reason"] == "destroyed"


def test_recycle_whose_step_cannot_start_holds_no_hostname(gateway, db, monkeypatch):
    """A deployment whose provisioning function cannot be invoked: 502, and the replacement's
    launch is failed at once, so its hostname is not held until the reconciler gives up on it."""
    hostname = f"lablink-vm-{ENVIRONMENT}-1"
    db.vms.insert(hostname, status="running", instance_id="i-0000000000000001")
    dispatch.set_dispatcher(None)  # the Lambda invoke, with no function to invoke
    monkeypatch.delenv("PROVISION_FUNCTION_NAME", raising=False)

    answer = gateway.request("POST", f"/api/vms/{hostname}/recycle", json_body={}, headers=ADMIN)
    assert answer.status == 502 and "released but not destroyed; recycle it again" in answer.json()["error"]
    assert db.pool.list_launching_hostnames() == []
    assert db.operations.list_launches_in_flight() == set()
