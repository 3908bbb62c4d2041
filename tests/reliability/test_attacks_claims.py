"""Issue 12's attacks on request_vm, items 1 and 3: a VM taken over by whoever knows its
researcher's email, and one address draining the pool. The API runs as in
tests/integration/api (the real handlers behind the API Gateway emulator, real PostgreSQL
through PgBouncer, AWS on moto), with the fixtures of tests/support/api_fixtures.py."""

from __future__ import annotations

import json
import re
import time

from api_support import CONFIG
from db_probe import audit_trail, vm_of_email

VICTIM_CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Victim" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
ATTACKER_CRD = VICTIM_CRD.replace("4/0Victim", "4/0Attacker")


def ask(gateway, email, command=VICTIM_CRD, source_ip="198.51.100.10", **extra):
    return gateway.request("POST", "/api/request_vm", json_body={"email": email, "crd_command": command, **extra}, source_ip=source_ip)


def test_knowing_the_email_in_another_letter_case_does_not_take_the_vm(gateway, vm_factory, db):
    vm_factory(1)
    vm_factory(2)
    first = ask(gateway, "ada@example.org")
    assert first.status == 200
    victim_row = vm_of_email(db, "ada@example.org")
    before = (db.vms.list_all(), audit_trail(db))

    for extra in ({}, {"claim_token": "a-guessed-token"}):
        takeover = ask(gateway, "ADA@Example.ORG", ATTACKER_CRD, source_ip="203.0.113.66", **extra)
        assert takeover.status == 409 and set(takeover.json()) == {"error"}
        assert first.json()["hostname"] not in takeover.text and first.json()["pin"] not in takeover.text
    assert vm_of_email(db, "ada@example.org") == victim_row  # same pin, same crdcommand
    # Nothing else changed either: no VM row (the other stays free), no audit entry; only the
    # attempts were counted (rate_limit_windows).
    assert (db.vms.list_all(), audit_trail(db)) == before

    # The victim, with the token of the first answer, still gets the VM with a new PIN.
    again = ask(gateway, "ada@example.org", claim_token=first.json()["claim_token"])
    assert again.status == 200 and again.json()["hostname"] == first.json()["hostname"]
    assert again.json()["claim_token"] == first.json()["claim_token"]


def test_one_address_flooding_with_new_emails_is_stopped_and_others_are_served(monkeypatch, gateway, vm_factory, db):
    """A small limit for the test; the default (1200 a minute) behaves the same, later."""
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({**CONFIG, "researcher": {"attempts_per_address": 20}}))
    for n in range(1, 31):
        vm_factory(n)
    flood = [ask(gateway, f"attacker+{n}@example.org", source_ip="203.0.113.7") for n in range(25)]
    assert [r.status for r in flood] == [200] * 20 + [429] * 5
    refused = flood[-1]
    assert set(refused.json()) == {"error"} and 1 <= int(refused.header("Retry-After") or 0) <= 60
    assert vm_of_email(db, "attacker+24@example.org") is None  # a 429 claimed nothing
    assert gateway.request("GET", "/api/unassigned_vms_count").json() == {"count": 10}

    participant = ask(gateway, "grace@example.org", source_ip="198.51.100.20")
    assert participant.status == 200


def test_a_room_of_300_behind_one_nat_address_all_get_a_vm_within_a_minute(gateway, vm_factory, db):
    """The default limits. Each participant posts the page's form; every tenth clicks again
    from the same browser (which sends back the claim cookie) and keeps the VM."""
    for n in range(1, 301):
        vm_factory(n)
    started = time.monotonic()
    hostnames = set()
    for n in range(300):
        email = f"participant{n}@example.org"
        form = {"email": email, "crd_command": VICTIM_CRD}
        answer = gateway.request("POST", "/api/request_vm", form=form, source_ip="203.0.113.200")
        assert answer.status == 200, answer.text
        cookie = re.match(r"lablink_claim=([^;]+)", answer.header("Set-Cookie") or "")
        assert cookie, answer.headers
        hostname = re.search(r'<code id="hostname">([^<]+)</code>', answer.text).group(1)
        if n % 10 == 0:
            again = gateway.request(
                "POST", "/api/request_vm", form=form, source_ip="203.0.113.200", headers={"Cookie": f"lablink_claim={cookie.group(1)}"}
            )
            assert again.status == 200 and hostname in again.text
        hostnames.add(hostname)
    assert len(hostnames) == 300
    assert time.monotonic() - started < 60
