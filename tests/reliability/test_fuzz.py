"""Fuzzing: schemathesis generates requests from the committed OpenAPI document (valid and
invalid ones) and sends them over HTTP to the local gateway, which runs the real authorizer
and functions on a real PostgreSQL. Four rounds: no credentials, wrong credentials, a VM's
own token, the admin's password. Every answer must be a non-5xx that the document allows
(status, content type, headers, body schema); afterwards the database must hold exactly
what the credentials allowed, with every change in the audit trail.

Examples per operation and round: LABLINK_FUZZ_EXAMPLES (CI default below; prove.py runs
it with many more)."""

from __future__ import annotations

import base64
import os
import random
import threading
from collections import Counter
from pathlib import Path

import psycopg2
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from proof_support import record
from psycopg2 import sql
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink.tokens import hash_token, mint_token

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
EXAMPLES = int(os.environ.get("LABLINK_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_path(OPENAPI)

OWN_VM = "lablink-vm-local-1"
OTHER_VM = "lablink-vm-local-2"
cases: Counter[str] = Counter()
statuses: Counter[str] = Counter()
_count_lock = threading.Lock()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def snapshot(url: str) -> dict[str, list]:
    """Every row of every table of the database (sorted: a snapshot compares by content)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
        tables = [row[0] for row in cur.fetchall()]
        found = {}
        for table in tables:
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            names = [d.name for d in cur.description]
            found[table] = sorted((dict(zip(names, row, strict=True)) for row in cur.fetchall()), key=repr)
    conn.close()
    return found


def schema_of(url: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        columns = cur.fetchall()
        cur.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1")
        triggers = cur.fetchall()
    conn.close()
    return columns + triggers


@pytest.fixture(scope="module")
def fuzz_target(api_stack):
    """The stack with two VMs, both still booting (so no researcher can be given one while
    the rounds without credentials run): ours (we hold its token) and another."""
    db = Database(api_stack["database_url"], DbConfig(), actor="fuzz-setup")
    token = mint_token()
    assert db.vms.insert(OWN_VM, status="initializing", token_hash=hash_token(token))
    assert db.vms.insert(OTHER_VM, status="initializing", token_hash=hash_token(mint_token()))
    db.close()
    session = requests.Session()
    target = {
        **api_stack,
        "token": token,
        "session": session,
        "before": snapshot(api_stack["database_url"]),
        "schema": schema_of(api_stack["database_url"]),
    }
    yield target
    session.close()
    record("fuzz", {"examples_per_operation": EXAMPLES, "cases": dict(cases), "total_cases": sum(cases.values()),
                    "statuses": dict(sorted(statuses.items()))})


def send(target: dict, case, round_name: str, authorization: str | None):
    headers = {"Authorization": authorization} if authorization else None
    if authorization is None and case.headers:
        case.headers.pop("Authorization", None)
    response = case.call(base_url=target["api_url"], session=target["session"], headers=headers, timeout=30)
    with _count_lock:
        cases[round_name] += 1
        statuses[f"{response.status_code}"] += 1
    case.validate_response(response, checks=CHECKS)


def aim_at_own_vm(case) -> None:
    """Half the time, the generated hostname is replaced by our VM's, so the token's own
    routes are reached (and not only their 403)."""
    if random.random() < 0.5:
        return
    if case.path_parameters and "hostname" in case.path_parameters:
        case.path_parameters["hostname"] = OWN_VM
    if isinstance(case.body, dict) and "hostname" in case.body:
        case.body["hostname"] = OWN_VM


# -- what fuzzing found, kept as plain regression tests (first: they change nothing) ------------


def test_a_multipart_body_without_boundary_is_refused_with_400(fuzz_target):
    answer = fuzz_target["session"].post(
        fuzz_target["api_url"] + "/api/update_inuse_status",
        data=b'{"hostname": "lablink-vm-local-1", "status": false}',
        headers={"Content-Type": "multipart/form-data", "Authorization": f"Bearer {fuzz_target['token']}"},
        timeout=30,
    )
    assert answer.status_code == 400
    answer = fuzz_target["session"].post(
        fuzz_target["api_url"] + "/api/launch",
        data=b'{"num_vms": 1}',
        headers={"Content-Type": "multipart/form-data", "Authorization": basic("admin", fuzz_target["admin_password"])},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "The multipart/form-data body has no boundary."}


def test_a_startup_time_beyond_what_postgresql_stores_is_refused_with_400(fuzz_target):
    answer = fuzz_target["session"].post(
        f"{fuzz_target['api_url']}/api/vm-metrics/{OWN_VM}",
        json={"cloud_init_end": 5.4e16, "container_end": 3.7e213},
        headers={"Authorization": f"Bearer {fuzz_target['token']}"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert "year 10000" in answer.json()["error"]


def test_a_path_value_with_a_line_break_gets_a_json_answer(fuzz_target):
    answer = fuzz_target["session"].get(
        fuzz_target["api_url"] + "/api/operations/a%0Db%0Ac",
        headers={"Authorization": basic("admin", fuzz_target["admin_password"])},
        timeout=30,
    )
    assert answer.status_code in (404, 422)
    assert "error" in answer.json()


def test_a_path_value_with_glob_characters_is_allowed_for_the_admin(fuzz_target):
    answer = fuzz_target["session"].get(
        fuzz_target["api_url"] + "/api/operations/%5Bx%5D%0A",
        headers={"Authorization": basic("admin", fuzz_target["admin_password"])},
        timeout=30,
    )
    assert answer.status_code in (404, 422)
    assert "error" in answer.json()


# -- 1 and 2: no credentials, wrong credentials ---------------------------------------------


@schema.parametrize()
@FUZZ_SETTINGS
def test_without_credentials(case, fuzz_target):
    send(fuzz_target, case, "no credentials", None)


@schema.parametrize()
@FUZZ_SETTINGS
def test_with_wrong_credentials(case, fuzz_target):
    wrong = random.choice(
        [basic("admin", "not-the-password"), basic("root", fuzz_target["admin_password"]), "Bearer " + mint_token(),
         "Bearer", "Basic !!!", f"Bearer {fuzz_target['token']}x"]
    )
    send(fuzz_target, case, "wrong credentials", wrong)


def test_nothing_changed_without_credentials(fuzz_target):
    assert snapshot(fuzz_target["database_url"]) == fuzz_target["before"]


# -- 3: a VM's own token ----------------------------------------------------------------------


@schema.parametrize()
@FUZZ_SETTINGS
def test_with_a_vm_token(case, fuzz_target):
    aim_at_own_vm(case)
    send(fuzz_target, case, "vm token", f"Bearer {fuzz_target['token']}")


def test_a_vm_token_changed_only_its_vm(fuzz_target):
    before, after = fuzz_target["before"], snapshot(fuzz_target["database_url"])
    assert [r for r in after["vms"] if r["hostname"] != OWN_VM] == [r for r in before["vms"] if r["hostname"] != OWN_VM]
    assert {r["hostname"] for r in after["vms"]} == {OWN_VM, OTHER_VM}
    new_audit = [r for r in after["vm_audit"] if r not in before["vm_audit"]]
    own_before = next(r for r in before["vms"] if r["hostname"] == OWN_VM)
    own_after = next(r for r in after["vms"] if r["hostname"] == OWN_VM)
    # Whatever the token changed of its own row, the audit trail says so, and nothing else.
    if own_after != own_before:
        assert new_audit, "the VM's row changed without an audit entry"
    assert {(r["hostname"], r["action"], r["actor"]) for r in new_audit} <= {(OWN_VM, "UPDATE", "metrics")}, new_audit
    assert not any(r["assignment_changed"] for r in new_audit)
    for table in ("operations", "vm_log_events"):
        assert after[table] == before[table]


# -- 4: the admin -------------------------------------------------------------------------------


@schema.parametrize()
@FUZZ_SETTINGS
def test_as_admin(case, fuzz_target):
    send(fuzz_target, case, "admin", basic("admin", fuzz_target["admin_password"]))


def test_database_intact_after_fuzzing(fuzz_target):
    url = fuzz_target["database_url"]
    assert schema_of(url) == fuzz_target["schema"], "the schema changed"
    after = snapshot(url)
    audit = after["vm_audit"]
    # Every row there is has its INSERT in the audit trail; every row gone has its DELETE.
    inserted = {r["hostname"] for r in audit if r["action"] == "INSERT"}
    deleted = {r["hostname"] for r in audit if r["action"] == "DELETE"}
    present = {r["hostname"] for r in after["vms"]}
    assert present <= inserted
    assert (inserted - present) <= deleted
    # The last audited state of each row is the row.
    last = {}
    for row in audit:
        last[row["hostname"]] = row
    for vm in after["vms"]:
        assert last[vm["hostname"]]["new_status"] == vm["status"], vm["hostname"]
        assert last[vm["hostname"]]["new_email"] == vm["useremail"], vm["hostname"]
    # No researcher holds two VMs; every assigned VM has its command and PIN.
    emails = [vm["useremail"] for vm in after["vms"] if vm["useremail"]]
    assert len(emails) == len(set(emails))
    assert all(vm["crdcommand"] and vm["pin"] for vm in after["vms"] if vm["useremail"])
    # The fleet maximum held against every fuzzed launch.
    assert len(after["vms"]) <= 12

