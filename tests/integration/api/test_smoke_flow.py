"""The whole API once through: launch on moto, VMs report with the tokens from their user
data, researchers are assigned, the admin reads it all, destroy."""

from __future__ import annotations

import boto3
from api_support import ADMIN, ENVIRONMENT, bearer, instances_of, token_in_user_data, user_data_of
from db_probe import row_count, token_hash


def test_launch_report_assign_destroy(gateway, provisioner, db):
    launched = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN)
    assert launched.status == 202, launched.text
    body = launched.json()
    assert body["hostnames"] == ["lablink-vm-test-1", "lablink-vm-test-2"]
    assert provisioner.wait(30)

    operation = gateway.request("GET", f"/api/operations/{body['operation_id']}", headers=ADMIN).json()
    assert operation["status"] == "succeeded", operation
    assert (operation["requested"], operation["done"], operation["failed"]) == (2, 2, 0)

    # Each VM reports with the token handed to it in its user data.
    ec2 = boto3.client("ec2", region_name="us-west-2")
    tokens = {}
    for instance in instances_of(ec2, ENVIRONMENT):
        hostname = {t["Key"]: t["Value"] for t in instance["Tags"]}["lablink:hostname"]
        tokens[hostname] = token_in_user_data(user_data_of(ec2, instance["InstanceId"]), token_hash(db, hostname))
    assert set(tokens) == set(body["hostnames"]) and all(tokens.values())

    assert gateway.request("GET", "/api/unassigned_vms_count").json() == {"count": 0}
    for hostname, token in tokens.items():
        answer = gateway.request("POST", "/api/vm-status", json_body={"hostname": hostname, "status": "running"}, headers=bearer(token))
        assert answer.status == 200, answer.text
    assert gateway.request("GET", "/api/unassigned_vms_count").json() == {"count": 2}

    hostname, token = next(iter(tokens.items()))
    # Fractions of a second, as a VM measures them: the export rounds them to 0.1 s.
    metrics = {"cloud_init_start": 1_700_000_000.04, "cloud_init_end": 1_700_000_060.37, "container_start": 1_700_000_060.37, "container_end": 1_700_000_090.5}
    answer = gateway.request("POST", f"/api/vm-metrics/{hostname}", json_body=metrics, headers=bearer(token))
    assert answer.status == 200 and "total startup" in answer.json()["message"], answer.text
    assert gateway.request("POST", "/api/gpu_health", json_body={"hostname": hostname, "gpu_status": "Healthy"}, headers=bearer(token)).status == 200
    assert gateway.request("POST", "/api/update_inuse_status", json_body={"hostname": hostname, "status": True}, headers=bearer(token)).status == 200

    assigned = gateway.request(
        "POST",
        "/api/request_vm",
        json_body={"email": "Ada@Example.org", "crd_command": "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=\"4/0Abc_d-e\" --redirect-url=\"https://remotedesktop.google.com/_/oauthredirect\" --name=$(hostname)"},
    )
    assert assigned.status == 200, assigned.text
    assert assigned.json()["hostname"] in tokens and len(assigned.json()["pin"]) == 6

    vms = gateway.request("GET", "/api/vms", headers=ADMIN).json()["vms"]
    mine = next(vm for vm in vms if vm["hostname"] == assigned.json()["hostname"])
    assert mine["useremail"] == "ada@example.org"
    assert "4/0Abc_d-e" not in mine["crdcommand"] and "--code=***" in mine["crdcommand"]
    assert "token_hash" not in mine and "logs" not in mine
    assert gateway.request("GET", "/api/status", headers=ADMIN).json() == {"assigned": 1, "running": 1}
    assert gateway.request("GET", f"/api/vm-status/{hostname}", headers=ADMIN).json()["status"] in ("running", "assigned")
    page = gateway.request("GET", "/admin", headers=ADMIN)
    assert page.status == 200 and hostname in page.text and page.header("Content-Type").startswith("text/html")

    csv_export = gateway.request("GET", "/api/export-metrics?format=csv", headers=ADMIN)
    assert csv_export.status == 200 and csv_export.header("Content-Type").startswith("text/csv")
    lines = csv_export.text.splitlines()
    assert len(lines) == 3
    assert lines[0] == (
        "hostname,status,provisioning_start,provisioning_end,provisioning_s,cloud_init_start,cloud_init_end,cloud_init_s,"
        "container_start,container_end,container_s,total_s,created_at"
    )
    exported = gateway.request("GET", "/api/export-metrics", query={"format": "json"}, headers=ADMIN).json()["vms"]
    reported = next(vm for vm in exported if vm["hostname"] == hostname)
    # Named for people, seconds to 0.1, times in ISO 8601 UTC with Z (1_700_000_000 is 22:13:20 UTC).
    assert (reported["cloud_init_s"], reported["container_s"]) == (60.3, 30.1)
    assert (reported["cloud_init_start"], reported["container_end"]) == ("2023-11-14T22:13:20Z", "2023-11-14T22:14:50Z")
    assert abs(reported["total_s"] - (reported["provisioning_s"] + 60.33 + 30.13)) <= 0.1
    for column in ("provisioning_start", "provisioning_end", "created_at"):
        assert reported[column].endswith("Z") and "+" not in reported[column], reported
    assert all(vm["total_s"] is None or round(vm["total_s"], 1) == vm["total_s"] for vm in exported)

    destroyed = gateway.request("POST", "/api/destroy", json_body={}, headers=ADMIN)
    assert destroyed.status == 202 and sorted(destroyed.json()["hostnames"]) == sorted(tokens)
    assert provisioner.wait(30)
    assert gateway.request("GET", f"/api/operations/{destroyed.json()['operation_id']}", headers=ADMIN).json()["status"] == "succeeded"
    assert row_count(db) == 0
    assert instances_of(ec2, ENVIRONMENT) == []
    # A destroyed VM's token opens nothing any more.
    assert gateway.request("POST", "/api/vm-status", json_body={"hostname": hostname, "status": "running"}, headers=bearer(token)).status == 401
