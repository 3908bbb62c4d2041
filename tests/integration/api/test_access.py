"""GET/PUT /api/access (admin): the gate's settings, validated, never the code itself; the
configuration's defaults until the admin sets them; the researcher page's code field."""

from __future__ import annotations

import json

import pytest
from api_support import ADMIN, CONFIG

from lablink.access import code_matches


def put(gateway, body, headers=ADMIN):
    return gateway.request("PUT", "/api/access", headers=headers, json_body=body)


def test_admin_only(gateway):
    assert gateway.request("GET", "/api/access").status == 401
    assert put(gateway, {"code": None}, headers={}).status == 401


def test_put_answers_like_get_keeps_what_it_leaves_out_and_never_returns_the_code(gateway, db):
    assert gateway.request("GET", "/api/access", headers=ADMIN).json() == {
        "code_required": False,
        "allowed_emails": [],
        "allowed_domains": [],
    }
    answer = put(
        gateway,
        {"code": "otter-42", "allowed_emails": ["Ada@Uni.EDU", "ada@uni.edu"], "allowed_domains": ["@Example.ORG"]},
    )
    assert answer.status == 200
    expected = {"code_required": True, "allowed_emails": ["ada@uni.edu"], "allowed_domains": ["example.org"]}
    assert answer.json() == expected and "otter-42" not in answer.text
    assert gateway.request("GET", "/api/access", headers=ADMIN).json() == expected

    stored = db.access.get()
    assert "otter-42" not in json.dumps(stored) and code_matches("otter-42", stored["code_hash"])

    assert put(gateway, {"allowed_emails": []}).json() == {**expected, "allowed_emails": []}  # the code is kept
    assert put(gateway, {"code": None}).json() == {
        "code_required": False,
        "allowed_emails": [],
        "allowed_domains": ["example.org"],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"code": "abc"},  # shorter than 4
        {"code": "x" * 65},
        {"code": 1234},
        {"allowed_emails": ["not-an-email"]},
        {"allowed_emails": "ada@uni.edu"},
        {"allowed_domains": ["uni edu"]},
        {"allowed_domains": ["-uni.edu"]},
        {"allowed_emails": [f"user{n}@uni.edu" for n in range(1001)]},
    ],
)
def test_invalid_settings_are_refused_and_nothing_changes(gateway, body):
    put(gateway, {"code": "otter-42"})
    answer = put(gateway, body)
    assert answer.status == 422, answer.text
    assert "error" in answer.json()
    assert gateway.request("GET", "/api/access", headers=ADMIN).json() == {
        "code_required": True,
        "allowed_emails": [],
        "allowed_domains": [],
    }


def test_the_configuration_sets_the_defaults_until_the_admin_changes_them(gateway, monkeypatch):
    defaults = {"code": "whiteboard", "allowed_emails": ["Guest@Example.org"], "allowed_domains": ["uni.edu"]}
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({**CONFIG, "access": defaults}))
    assert gateway.request("GET", "/api/access", headers=ADMIN).json() == {
        "code_required": True,
        "allowed_emails": ["guest@example.org"],
        "allowed_domains": ["uni.edu"],
    }
    assert put(gateway, {"allowed_domains": []}).json()["code_required"] is True  # the configured code is kept


def test_the_page_shows_the_code_field_only_while_a_code_is_required(gateway):
    assert 'name="access_code"' not in gateway.request("GET", "/").text
    put(gateway, {"code": "otter-42"})
    assert 'name="access_code"' in gateway.request("GET", "/").text
    dashboard = gateway.request("GET", "/admin", headers=ADMIN).text
    assert "Participants need the access code." in dashboard and "otter-42" not in dashboard
