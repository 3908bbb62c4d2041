"""The kick: a successful claim starts a reconcile at once (so the pool refills within seconds),
after the claim is committed; a kick that fails never fails the claim."""

from __future__ import annotations

import pytest
from db_probe import vm_of_email

from lablink.pool import kick

CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AbCd_e-F" --name=$(hostname)'


def request_vm(gateway, email):
    return gateway.request("POST", "/api/request_vm", json_body={"email": email, "crd_command": CRD})


@pytest.fixture
def kicks():
    """The kicks of this process, each with what the database showed at that moment."""
    seen: list[object] = []
    yield seen
    kick.set_kicker(None)


def test_a_claim_kicks_the_reconciler_once_it_is_committed(gateway, vm_factory, db, kicks):
    vm_factory()
    kick.set_kicker(lambda: kicks.append((vm_of_email(db, "ada@example.org") or {}).get("hostname")))
    answer = request_vm(gateway, "ada@example.org")
    assert answer.status == 200
    # The reconcile it starts (on another connection) sees the VM taken.
    assert kicks == [answer.json()["hostname"]]


def test_a_refused_claim_does_not_kick(gateway, kicks):
    kick.set_kicker(lambda: kicks.append("kicked"))
    assert request_vm(gateway, "ada@example.org").status == 503  # no VM at all
    assert kicks == []


def test_a_failing_kick_never_fails_the_claim(gateway, vm_factory, db, kicks, monkeypatch):
    vm_factory()
    vm_factory()

    def broken() -> None:
        raise ConnectionError("the Lambda API did not answer")

    kick.set_kicker(broken)
    answer = request_vm(gateway, "ada@example.org")
    assert answer.status == 200 and vm_of_email(db, "ada@example.org")["hostname"] == answer.json()["hostname"]
    # A deployment's kicker in a process that has no reconciler function: refused, logged, counted.
    kick.set_kicker(None)
    monkeypatch.delenv("RECONCILE_FUNCTION_NAME", raising=False)
    answer = request_vm(gateway, "grace@example.org")
    assert answer.status == 200 and vm_of_email(db, "grace@example.org")["hostname"] == answer.json()["hostname"]
