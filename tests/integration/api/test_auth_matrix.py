"""Every route x no credentials / wrong credentials / another VM's token / right credentials
gives the status API.md promises (401 with WWW-Authenticate: Basic, 403 for another VM)."""

from __future__ import annotations

import pytest
from api_support import ADMIN, ADMIN_PASSWORD, basic, bearer

from lablink.routes import ROUTES, Auth

# A request per route that succeeds with the right credentials: (path, json body, status).
SAMPLES = {
    ("GET", "/"): ("/", None, 200),
    ("GET", "/api/unassigned_vms_count"): ("/api/unassigned_vms_count", None, 200),
    ("POST", "/api/request_vm"): ("/api/request_vm", {"email": "r+{credentials}@example.org", "crd_command": "start-host --code=4/abc"}, 200),
    ("GET", "/admin"): ("/admin", None, 200),
    ("GET", "/api/vms"): ("/api/vms", None, 200),
    ("GET", "/api/vm-status"): ("/api/vm-status", None, 200),
    ("GET", "/api/vm-status/{hostname}"): ("/api/vm-status/{vm}", None, 200),
    ("GET", "/static/{name}"): ("/static/admin.js", None, 200),
    ("GET", "/api/status"): ("/api/status", None, 200),
    ("GET", "/api/vm-logs/{hostname}"): ("/api/vm-logs/{vm}", None, 200),
    ("GET", "/api/export-metrics"): ("/api/export-metrics?format=csv", None, 200),
    ("GET", "/openapi.json"): ("/openapi.json", None, 200),
    ("GET", "/api/access"): ("/api/access", None, 200),
    ("PUT", "/api/access"): ("/api/access", {"allowed_domains": ["example.org"]}, 200),
    ("POST", "/api/launch"): ("/api/launch", {"num_vms": 1}, 202),
    # An unknown hostname: the route itself answers (404 naming it), so the caller got past auth.
    ("POST", "/api/destroy"): ("/api/destroy", {"hostnames": ["lablink-vm-test-99"]}, 404),
    ("GET", "/api/operations/{operation_id}"): ("/api/operations/{operation}", None, 200),
    ("POST", "/api/vm-status"): ("/api/vm-status", {"hostname": "{vm}", "status": "running"}, 200),
    ("POST", "/api/vm-metrics/{hostname}"): ("/api/vm-metrics/{vm}", {"cloud_init_start": 1_700_000_000}, 200),
    ("POST", "/api/gpu_health"): ("/api/gpu_health", {"hostname": "{vm}", "gpu_status": "Healthy"}, 200),
    ("POST", "/api/update_inuse_status"): ("/api/update_inuse_status", {"hostname": "{vm}", "status": False}, 200),
}

CREDENTIALS = ("none", "wrong", "other_vm", "right")


def test_every_route_has_a_sample():
    assert set(SAMPLES) == {(route.method, route.path) for route in ROUTES}


def expected(auth: Auth, credentials: str, ok: int) -> int:
    if auth is Auth.PUBLIC or credentials == "right":
        return ok
    if auth is Auth.VM and credentials == "other_vm":
        return 403
    return 401


@pytest.fixture
def world(gateway, db, vm_factory):
    vm, vm_token = vm_factory(1)
    other, other_token = vm_factory(2)
    vm_factory(3)  # request_vm claims one VM per caller (a new email each: a repeat would need its claim token)
    vm_factory(4)
    operation = str(db.operations.create("destroy", []))
    return {"vm": vm, "vm_token": vm_token, "other_token": other_token, "operation": operation}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_auth(gateway, world, route):
    """The four kinds of caller in turn (the right one last: it may change the data)."""
    path, body, ok = SAMPLES[(route.method, route.path)]
    path = path.format(**world)
    if route.auth is Auth.VM:
        headers = {"none": {}, "wrong": bearer("not-a-token-" + "y" * 30), "other_vm": bearer(world["other_token"]), "right": bearer(world["vm_token"])}
    else:
        headers = {"none": {}, "wrong": basic("admin", ADMIN_PASSWORD + "x"), "other_vm": bearer(world["other_token"]), "right": ADMIN}
    seen = {}
    for credentials in CREDENTIALS:
        values = {**world, "credentials": credentials}
        json_body = None if body is None else {k: (v.format(**values) if isinstance(v, str) else v) for k, v in body.items()}
        answer = gateway.request(route.method, path, json_body=json_body, headers=headers[credentials])
        seen[credentials] = answer.status
        if answer.status == 401:
            assert answer.header("WWW-Authenticate").startswith("Basic ")
        if answer.status == 403:
            assert answer.json() == {"error": "This token belongs to another VM."}
    assert seen == {c: expected(route.auth, c, ok) for c in CREDENTIALS}


@pytest.mark.parametrize(
    "authorization",
    [
        basic("root", ADMIN_PASSWORD)["Authorization"],
        basic("admin", "")["Authorization"],
        "Basic !!!not-base64",
        "Basic " + "YWRtaW4=",  # "admin" without a colon
        "Bearer " + "z" * 43,
        "Digest admin",
    ],
)
def test_admin_refuses_malformed_or_wrong_credentials(gateway, world, authorization):
    assert gateway.request("GET", "/api/vms", headers={"Authorization": authorization}).status == 401


def test_admin_credentials_are_not_valid_vm_tokens(gateway, world):
    answer = gateway.request("POST", "/api/vm-status", json_body={"hostname": world["vm"], "status": "running"}, headers=ADMIN)
    assert answer.status == 401


def test_vm_token_cannot_report_for_another_vm_by_path(gateway, world, db):
    answer = gateway.request("POST", "/api/vm-metrics/lablink-vm-test-2", json_body={"cloud_init_start": 1}, headers=bearer(world["vm_token"]))
    assert answer.status == 403
    assert db.vms.get("lablink-vm-test-2")["cloudinitstarttime"] is None
