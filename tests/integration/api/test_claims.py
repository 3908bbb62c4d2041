"""Claim tokens and rate limits of request_vm as a browser and a JSON client meet them (the
attacks themselves: tests/reliability/test_attacks_claims.py)."""

from __future__ import annotations

import json
import re
import time

from api_support import CONFIG
from db_probe import claim_token_hash, rate_limit_window_count, vm_of_email

from lablink.tokens import hash_token

CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AbCd_e-F" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
FORM = {"email": "ada@example.org", "crd_command": CRD}


def limits(monkeypatch, **researcher):
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({**CONFIG, "researcher": researcher}))


def test_the_form_post_sets_the_claim_cookie_and_the_same_browser_asks_again(gateway, vm_factory, db):
    hostname, _ = vm_factory(1)
    vm_factory(2)
    first = gateway.request("POST", "/api/request_vm", form=FORM)
    cookie = first.header("Set-Cookie")
    assert first.status == 200 and cookie
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure"} <= set(attributes) and attributes["samesite"] == "SameSite=Lax" and attributes["path"] == "Path=/prod"
    token = re.match(r"lablink_claim=([^;]+)", cookie).group(1)
    assert len(token) >= 43 and claim_token_hash(db, hostname) == hash_token(token)  # only the hash is stored
    assert "Only this browser can do that" in first.text

    reload = gateway.request("POST", "/api/request_vm", form=FORM, headers={"Cookie": f"theme=dark; lablink_claim={token}"})
    assert reload.status == 200 and hostname in reload.text and token in reload.header("Set-Cookie")

    elsewhere = gateway.request("POST", "/api/request_vm", form=FORM)
    assert elsewhere.status == 409 and elsewhere.header("Content-Type").startswith("text/html")
    assert hostname not in elsewhere.text and "already has a VM" in elsewhere.text


def test_the_cookie_is_not_secure_only_when_the_request_came_over_plain_http(gateway, vm_factory):
    vm_factory(1)
    answer = gateway.request("POST", "/api/request_vm", form=FORM, headers={"X-Forwarded-Proto": "http"})
    assert answer.status == 200 and "secure" not in answer.header("Set-Cookie").lower()


def test_a_json_client_sends_its_token_back(gateway, vm_factory, db):
    vm_factory(1)
    first = gateway.request("POST", "/api/request_vm", json_body=FORM).json()
    again = gateway.request("POST", "/api/request_vm", json_body={**FORM, "claim_token": first["claim_token"]})
    assert again.status == 200 and again.json()["hostname"] == first["hostname"]
    assert vm_of_email(db, "ada@example.org")["pin"] == again.json()["pin"]


def test_a_vm_whose_assignment_ends_forgets_its_claim_token(gateway, vm_factory, db):
    hostname, _ = vm_factory(1)
    assert gateway.request("POST", "/api/request_vm", json_body=FORM).status == 200
    assert claim_token_hash(db, hostname) is not None
    db.vms.set_terminated([hostname])
    assert claim_token_hash(db, hostname) is None


def test_one_email_is_limited_whatever_the_address_and_a_429_page_says_when(monkeypatch, gateway, vm_factory):
    limits(monkeypatch, attempts_per_email=3)
    vm_factory(1)
    first = gateway.request("POST", "/api/request_vm", json_body=FORM, source_ip="198.51.100.1").json()
    for n in range(2):
        body = {**FORM, "claim_token": first["claim_token"]}
        assert gateway.request("POST", "/api/request_vm", json_body=body, source_ip=f"198.51.100.{n + 2}").status == 200
    refused = gateway.request("POST", "/api/request_vm", form=FORM, source_ip="198.51.100.9")
    assert refused.status == 429 and refused.header("Content-Type").startswith("text/html")
    assert 1 <= int(refused.header("Retry-After")) <= 60 and "Too many requests" in refused.text


def test_ended_windows_are_deleted_as_attempts_arrive(monkeypatch, gateway, vm_factory, db):
    limits(monkeypatch, address_window_s=1, email_window_s=1)
    vm_factory(1)
    for n in range(3):
        gateway.request("POST", "/api/request_vm", json_body={**FORM, "email": f"u{n}@example.org"})
    time.sleep(1.1)
    gateway.request("POST", "/api/request_vm", json_body=FORM)
    assert rate_limit_window_count(db) == 2  # this attempt's address and email windows only
