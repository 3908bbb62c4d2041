"""VM telemetry routes: what a VM reports is stored; unknown values are refused with 400."""

from __future__ import annotations

from api_support import bearer


def test_status_values(gateway, db, vm_factory):
    hostname, token = vm_factory(1, status="initializing")
    for status in ("running", "error", "unknown", "initializing"):
        answer = gateway.request("POST", "/api/vm-status", json_body={"hostname": hostname, "status": status}, headers=bearer(token))
        assert answer.status == 200 and db.vms.get(hostname)["status"] == status
    for status in ("assigned", "available", "terminated", "RUNNING"):
        answer = gateway.request("POST", "/api/vm-status", json_body={"hostname": hostname, "status": status}, headers=bearer(token))
        assert answer.status == 400 and "a VM may report" in answer.json()["error"]
    assert db.vms.get(hostname)["status"] == "initializing"


def test_metrics_total_when_all_phases_known(gateway, db, vm_factory):
    hostname, token = vm_factory(1)
    db.startup.record(hostname, {"terraform_apply_duration_seconds": 30})
    send = lambda body: gateway.request("POST", f"/api/vm-metrics/{hostname}", json_body=body, headers=bearer(token))  # noqa: E731
    assert send({"container_startup_duration_seconds": 20}).json()["message"] == f"Metrics of {hostname} stored."
    answer = send({"cloud_init_start": 1_700_000_000, "cloud_init_end": 1_700_000_100.5})
    assert answer.status == 200 and "total startup 150.5 s" in answer.json()["message"]
    assert db.vms.get(hostname)["totalstartupdurationseconds"] == 150.5
    assert send({}).status == 400
    assert send({"cloud_init_start": -5}).status == 400


def test_gpu_health_and_in_use(gateway, db, vm_factory):
    hostname, token = vm_factory(1)
    for value in ("Healthy", "Unhealthy", "N/A"):
        assert gateway.request("POST", "/api/gpu_health", json_body={"hostname": hostname, "gpu_status": value}, headers=bearer(token)).status == 200
        assert db.vms.get(hostname)["healthy"] == value
    assert gateway.request("POST", "/api/gpu_health", json_body={"hostname": hostname, "gpu_status": "Broken"}, headers=bearer(token)).status == 400
    assert gateway.request("POST", "/api/update_inuse_status", json_body={"hostname": hostname, "status": True}, headers=bearer(token)).status == 200
    assert db.vms.get(hostname)["inuse"] is True


def test_vm_removed_after_authorization_gets_404(gateway, db, vm_factory, monkeypatch):
    """The row disappears between the authorizer and the function (a destroy meanwhile)."""
    hostname, token = vm_factory(1)
    from lablink.api import metrics

    monkeypatch.setattr(metrics, "own_hostname", lambda named: (db.vms.delete([named]), named)[1])
    answer = gateway.request("POST", "/api/vm-status", json_body={"hostname": hostname, "status": "running"}, headers=bearer(token))
    assert answer.status == 404 and hostname in answer.json()["error"]


def test_admin_reads_404_for_unknown_vms(gateway, vm_factory):
    from api_support import ADMIN

    vm_factory(1)
    assert gateway.request("GET", "/api/vm-status/lablink-vm-test-9", headers=ADMIN).status == 404
    assert gateway.request("GET", "/api/vm-logs/lablink-vm-test-9", headers=ADMIN).status == 404
    assert gateway.request("GET", "/api/vm-logs/lablink-vm-test-1", headers=ADMIN).json() == {"hostname": "lablink-vm-test-1", "logs": "", "lines": [], "dropped_events": 0, "dropped_bytes": 0}
    assert gateway.request("GET", "/api/operations/not-a-uuid", headers=ADMIN).status == 404
    assert gateway.request("GET", "/api/export-metrics?format=xml", headers=ADMIN).status == 422
    assert gateway.request("GET", "/api/nothing-here").status == 404  # no route (our gateway response)
