"""Issue 12, item 2, as attacks: one person drains the pool with made-up addresses. With the
access gate set, a request without the workshop code, with a wrong code, or from an email
outside the allowed domains is refused with 403 and claims nothing; the admin turns the gate
off at run time and requests go through with no redeploy.

The API runs as in tests/integration/api (tests/support/api_fixtures.py): the real handlers
and authorizer behind the API Gateway emulator, PostgreSQL through PgBouncer, AWS on moto."""

from __future__ import annotations

import pytest
from api_support import ADMIN
from db_probe import free_hostnames, row_count, vm_of_email

CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AbCd_e-F" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
CODE = "otter-42"


@pytest.fixture(autouse=True)
def three_free_vms(vm_factory):
    for number in (1, 2, 3):
        vm_factory(number)


def request_vm(gateway, email, **extra):
    return gateway.request("POST", "/api/request_vm", json_body={"email": email, "crd_command": CRD, **extra})


def set_access(gateway, **settings):
    answer = gateway.request("PUT", "/api/access", headers=ADMIN, json_body=settings)
    assert answer.status == 200, answer.text
    return answer.json()


def test_without_the_code_or_with_a_wrong_one_nothing_is_claimed(gateway, db):
    assert set_access(gateway, code=CODE) == {"code_required": True, "allowed_emails": [], "allowed_domains": []}
    free_before = free_hostnames(db)

    for n, extra in enumerate([{}, {"access_code": "otter-41"}, {"access_code": ""}, {"access_code": CODE.upper()}]):
        refused = request_vm(gateway, f"attacker+{n}@example.org", **extra)
        assert refused.status == 403, (extra, refused.text)
        assert set(refused.json()) == {"error"}
    assert free_hostnames(db) == free_before and vm_of_email(db, "attacker+0@example.org") is None

    # The page's form gets the page again, with the error and the code field.
    form = gateway.request(
        "POST", "/api/request_vm", form={"email": "attacker@example.org", "crd_command": CRD, "access_code": "nope"}
    )
    assert form.status == 403 and form.header("Content-Type").startswith("text/html")
    assert "access code is wrong" in form.text and 'name="access_code"' in form.text
    assert free_hostnames(db) == free_before

    honest = request_vm(gateway, "ada@example.org", access_code=f" {CODE} ")
    assert honest.status == 200 and vm_of_email(db, "ada@example.org")["hostname"] == honest.json()["hostname"]


def test_an_email_outside_the_allowed_domains_is_refused(gateway, db):
    set_access(gateway, allowed_domains=["Uni.edu"], allowed_emails=["guest@example.org"])
    free_before = free_hostnames(db)
    for outsider in ("attacker@example.org", "someone@uni.edu.evil.example", "someone@notuni.edu"):
        refused = request_vm(gateway, outsider)
        assert refused.status == 403, outsider
        assert vm_of_email(db, outsider) is None
    assert free_hostnames(db) == free_before
    assert request_vm(gateway, "Ada@CS.Uni.edu").status == 200  # a subdomain of an allowed domain
    assert request_vm(gateway, "guest@example.org").status == 200  # listed by itself
    assert row_count(db) == 3


def test_the_admin_turns_the_gate_off_at_run_time(gateway, db):
    set_access(gateway, code=CODE, allowed_domains=["uni.edu"])
    assert request_vm(gateway, "ada@example.org").status == 403

    # A partial update keeps the code; "code": null removes it.
    assert set_access(gateway, allowed_domains=[])["code_required"] is True
    assert request_vm(gateway, "ada@example.org").status == 403
    assert set_access(gateway, code=None) == {"code_required": False, "allowed_emails": [], "allowed_domains": []}
    assert request_vm(gateway, "ada@example.org").status == 200
