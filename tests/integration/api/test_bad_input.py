"""Bad input for every route with a body: malformed JSON, wrong types, missing fields (with
extra ones), bodies over 1 MiB and injection strings in every field each get a clear 4xx
with {"error": ...}, and the database is exactly as before (a data dump compared)."""

from __future__ import annotations

import json

import pytest
from api_support import ADMIN, bearer

INJECTIONS = [
    "'; DROP TABLE vms; --",
    "\" OR 1=1 --",
    "$(reboot)",
    "`reboot`",
    "a; rm -rf /",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "lablink-vm-test-1\u0000",
    "x" * 5000,
    "\u202e\ufeff",
]

VM = "lablink-vm-test-1"
CRD = "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=4/abc --name=$(hostname)"

# route -> (path, a valid body, its fields, the auth to use)
ROUTES_WITH_BODIES = {
    "request_vm": ("/api/request_vm", {"email": "r@example.org", "crd_command": CRD}, "public"),
    "launch": ("/api/launch", {"num_vms": 1}, "admin"),
    "destroy": ("/api/destroy", {"hostnames": [VM]}, "admin"),
    "vm_status": ("/api/vm-status", {"hostname": VM, "status": "running"}, "vm"),
    "vm_metrics": (f"/api/vm-metrics/{VM}", {"cloud_init_start": 1_700_000_000, "container_end": 1_700_000_100}, "vm"),
    "gpu_health": ("/api/gpu_health", {"hostname": VM, "gpu_status": "Healthy"}, "vm"),
    "inuse": ("/api/update_inuse_status", {"hostname": VM, "status": True}, "vm"),
}

WRONG_TYPES = [None, 7, 2.5, True, [], {}, "7"]


# Fields that may be left out or null: destroy without hostnames destroys everything, and
# the metrics route takes any subset of its fields.
OPTIONAL = {"hostnames", "cloud_init_start", "container_end"}


def bad_bodies(valid: dict) -> list[tuple[str, object]]:
    """(label, body) pairs, each of which must be refused."""
    cases: list[tuple[str, object]] = [("malformed", b'{"unclosed": '), ("not an object", [valid]), ("null", None), ("string", "text")]
    for field in valid:
        for value in WRONG_TYPES:
            if type(value) is type(valid[field]) or (isinstance(valid[field], list) and value == []):
                continue
            if field == "num_vms" and value == 7 or field in OPTIONAL and value is None:
                continue
            if isinstance(valid[field], int) and field != "num_vms" and isinstance(value, (int, float)) and not isinstance(value, bool):  # any number is a time
                continue
            cases.append((f"{field}={value!r}", {**valid, field: value}))
        missing = {k: v for k, v in valid.items() if k != field}
        if field not in OPTIONAL:
            cases.append((f"without {field}, with extras", {**missing, "unexpected": "field", "admin": True}))
        for injection in INJECTIONS:
            if isinstance(valid[field], list):
                cases.append((f"{field} item injection {injection[:12]!r}", {**valid, field: [injection]}))
            else:
                cases.append((f"{field} injection {injection[:12]!r}", {**valid, field: injection}))
    cases.append(("over 1 MiB", {**valid, "padding": "p" * (1024 * 1024 + 1)}))
    return cases




@pytest.fixture
def ready(gateway, db, vm_factory):
    _, token = vm_factory(1)
    return {"public": {}, "admin": ADMIN, "vm": bearer(token)}


def send(gateway, path, headers, body):
    raw = body if isinstance(body, bytes) else json.dumps(body)
    return gateway.request("POST", path, body=raw, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("name", sorted(ROUTES_WITH_BODIES))
def test_bad_input_is_refused_and_changes_nothing(gateway, ready, dump, name):
    path, valid, auth = ROUTES_WITH_BODIES[name]
    before = dump()
    failures = []
    for label, body in bad_bodies(valid):
        answer = send(gateway, path, ready[auth], body)
        ok = 400 <= answer.status < 500 and isinstance(answer.json().get("error"), str) and answer.json()["error"]
        if not ok:
            failures.append((label, answer.status, answer.text[:200]))
    assert failures == []
    assert dump() == before


def test_the_valid_bodies_do_change_the_database(gateway, ready, dump):
    """The matrix above is meaningful: the same routes with the valid bodies succeed."""
    for name in ("vm_status", "vm_metrics", "gpu_health", "inuse", "request_vm"):
        path, valid, auth = ROUTES_WITH_BODIES[name]
        before = dump()
        answer = send(gateway, path, ready[auth], valid)
        assert answer.status == 200, (name, answer.text)
        assert dump() != before, name


def test_unknown_fields_are_ignored_not_stored(gateway, ready, db):
    answer = send(gateway, "/api/vm-status", ready["vm"], {"hostname": VM, "status": "error", "pin": "000000", "useremail": "x@y.z"})
    assert answer.status == 200
    row = db.vms.get(VM)
    assert (row["status"], row["pin"], row["useremail"]) == ("error", None, None)


def test_form_post_with_bad_input_answers_html_with_the_status(gateway, ready, dump):
    before = dump()
    answer = gateway.request("POST", "/api/request_vm", form={"email": "r@example.org", "crd_command": "start-host --code=abc; reboot"})
    assert answer.status == 400
    assert answer.header("Content-Type").startswith("text/html")
    assert "shell operators" in answer.text and "reboot" not in answer.text.split("</textarea>")[-1]
    missing = gateway.request("POST", "/api/request_vm", form={"email": "r@example.org"})
    assert missing.status == 422 and "Email and CRD command are required." in missing.text
    assert dump() == before


def test_wrong_content_type_is_refused(gateway, ready):
    answer = gateway.request("POST", "/api/launch", body="num_vms=1", headers={**ADMIN, "Content-Type": "text/plain"})
    assert answer.status == 415 and "application/json" in answer.json()["error"]


def test_launch_beyond_the_configured_maximum(gateway, ready, dump):
    before = dump()
    too_many = gateway.request("POST", "/api/launch", json_body={"num_vms": 101}, headers=ADMIN)
    assert too_many.status == 422 and "at most 100" in too_many.json()["error"]
    assert gateway.request("POST", "/api/launch", json_body={"num_vms": 0}, headers=ADMIN).status == 422
    assert dump() == before
