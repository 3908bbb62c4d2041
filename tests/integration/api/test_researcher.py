"""The researcher's flow: empty pool -> 503; running VMs -> assigned; same email -> same VM
(its command and PIN replaced); the page and the form post."""

from __future__ import annotations

import json
import re

from api_support import ADMIN, CONFIG, ENVIRONMENT
from db_probe import vm_of_email

from lablink.pages.researcher import NEXT_STEPS

CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AbCd_e-F" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
CANONICAL = "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=4/0AbCd_e-F --redirect-url=https://remotedesktop.google.com/_/oauthredirect --name=$(hostname)"


def request_vm(gateway, email, command=CRD):
    return gateway.request("POST", "/api/request_vm", json_body={"email": email, "crd_command": command})


def test_empty_pool_then_assigned_then_same_vm(gateway, db, vm_factory):
    empty = request_vm(gateway, "ada@example.org")
    assert empty.status == 503 and empty.json() == {"error": "No available VMs. Please try again later."}

    vm_factory(1, status="initializing")
    assert request_vm(gateway, "ada@example.org").status == 503  # not running yet

    db.vms.set_status(f"lablink-vm-{ENVIRONMENT}-1", "running")
    vm_factory(2)
    first = request_vm(gateway, "Ada@Example.org")
    assert first.status == 200
    hostname, pin = first.json()["hostname"], first.json()["pin"]
    assert hostname == f"lablink-vm-{ENVIRONMENT}-1" and pin.isdigit() and len(pin) == 6
    assert vm_of_email(db, "ada@example.org")["crdcommand"] == CANONICAL

    again = gateway.request(
        "POST",
        "/api/request_vm",
        json_body={"email": "ada@example.org", "crd_command": CRD.replace("4/0AbCd_e-F", "4/0NewCode"), "claim_token": first.json()["claim_token"]},
    )
    assert again.status == 200 and again.json()["hostname"] == hostname
    assert "updated" in again.json()["message"]
    assert "4/0NewCode" in vm_of_email(db, "ada@example.org")["crdcommand"]
    assert gateway.request("GET", "/api/unassigned_vms_count").json() == {"count": 1}

    other = request_vm(gateway, "grace@example.org")
    assert other.json()["hostname"] == f"lablink-vm-{ENVIRONMENT}-2"
    assert request_vm(gateway, "linus@example.org").status == 503


def test_pins_are_random(gateway, vm_factory):
    for n in range(1, 21):
        vm_factory(n)
    pins = {request_vm(gateway, f"user{n}@example.org").json()["pin"] for n in range(20)}
    assert len(pins) > 15


def test_the_page_shows_the_free_count_and_posts_relative(gateway, vm_factory):
    vm_factory(1)
    vm_factory(2)
    page = gateway.request("GET", "/")
    assert page.status == 200 and page.header("Content-Type").startswith("text/html")
    assert '<strong id="free-count">2</strong>' in page.text
    assert 'action="api/request_vm"' in page.text
    script = re.search(r'<script src="(static/researcher\.js\?v=\w+)"></script>', page.text)
    assert script and 'fetch("api/unassigned_vms_count")' in gateway.request("GET", "/" + script.group(1)).text
    assert '<base href="/prod/">' in page.text  # API Gateway's stage prefix


def test_form_post_answers_an_html_page(gateway, vm_factory):
    hostname, _ = vm_factory(1)
    answer = gateway.request("POST", "/api/request_vm", form={"email": "ada@example.org", "crd_command": CRD})
    assert answer.status == 200 and answer.header("Content-Type").startswith("text/html")
    assert hostname in answer.text and "Your VM is assigned" in answer.text
    refused = gateway.request("POST", "/api/request_vm", form={"email": "grace@example.org", "crd_command": CRD})
    assert refused.status == 503 and "No available VMs" in refused.text
    assert refused.header("Content-Type").startswith("text/html")


def test_form_values_are_escaped_in_the_page(gateway, vm_factory):
    vm_factory(1)
    answer = gateway.request("POST", "/api/request_vm", form={"email": "<b>@x", "crd_command": CRD})
    assert answer.status == 422
    assert "<b>@x" not in answer.text and "&lt;b&gt;@x" in answer.text


def test_bad_crd_commands_are_refused_with_a_sentence(gateway, vm_factory, db):
    vm_factory(1)
    for command, words in [
        ("start-host --code=abc; reboot", "shell operators"),
        ("start-host --code=abc --pin=123456", "unexpected part"),
        ("start-host", "--code="),
        ("curl http://evil --code=abc", "start-host"),
        ('start-host --code="abc', "unclosed quote"),
        ("start-host --code=abc\nreboot", "single line"),
        ("start-host --code=abc --redirect-url=http://example.org", "https://"),
        ("start-host --code=a%20b", "--code= value"),
    ]:
        answer = request_vm(gateway, "ada@example.org", command)
        assert answer.status == 400, command
        assert words in answer.json()["error"], (command, answer.json())
    assert vm_of_email(db, "ada@example.org") is None


def test_bad_emails_are_refused(gateway, vm_factory):
    vm_factory(1)
    for email in ["not-an-email", "a@b", "x" * 250 + "@example.org", ""]:
        answer = request_vm(gateway, email)
        assert answer.status == 422, email
        assert answer.json()["error"]


def test_the_page_shows_the_workshops_title_and_the_organizers_instructions(gateway, monkeypatch):
    researcher = {
        "title": "SLEAP workshop",
        "instructions": "Use the email you registered with.\n\n<script>alert(1)</script>",
    }
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({**CONFIG, "researcher": researcher}))
    page = gateway.request("GET", "/").text
    assert "<title>SLEAP workshop</title>" in page and "<h1>SLEAP workshop</h1>" in page
    assert "<p>Use the email you registered with.</p>" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text


def _refusal(answer, status: int) -> str:
    """A refused form post: the request page again, as HTML, with the refusal and what to do."""
    assert answer.status == status and answer.header("Content-Type").startswith("text/html"), answer.text
    assert '<form id="request-form"' in answer.text and NEXT_STEPS[status] in answer.text
    return re.search(r'<p class="error">(.*?)</p>', answer.text).group(1)


def test_every_refusal_of_the_form_is_a_page_that_says_what_to_do(gateway, vm_factory, monkeypatch):
    form = {"email": "ada@example.org", "crd_command": CRD}
    assert "No available VMs" in _refusal(gateway.request("POST", "/api/request_vm", form=form), 503)
    vm_factory(1)
    vm_factory(2)
    assert gateway.request("POST", "/api/request_vm", form=form).status == 200
    assert "already has a VM" in _refusal(gateway.request("POST", "/api/request_vm", form=form), 409)  # another browser

    assert gateway.request("PUT", "/api/access", headers=ADMIN, json_body={"code": "otter-42"}).status == 200
    denied = gateway.request("POST", "/api/request_vm", form={**form, "email": "grace@example.org"})
    assert "access code" in _refusal(denied, 403)

    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({**CONFIG, "researcher": {"attempts_per_email": 1}}))
    gateway.request("POST", "/api/request_vm", form={**form, "email": "linus@example.org"})
    limited = gateway.request("POST", "/api/request_vm", form={**form, "email": "linus@example.org"})
    assert "Too many requests" in _refusal(limited, 429) and limited.header("Retry-After")
