"""The honest side of the browser protections (the attacks are in
tests/reliability/test_attacks_headers.py): the dashboard's own writes and the CLI still work,
on the execute-api name, a custom domain and the local stack; the pages' scripts and styles are
served as files, only those, with the right type and cache."""

from __future__ import annotations

import re

import pytest
from api_support import ADMIN

from lablink.pages.render import STATIC_DIR, STATIC_TYPES, static_file

SAME_ORIGIN = {
    "execute-api name": {
        "Host": "abc123.execute-api.us-west-2.amazonaws.com",
        "X-Forwarded-Proto": "https",
        "Origin": "https://abc123.execute-api.us-west-2.amazonaws.com",
    },
    "custom domain, any letter case": {
        "Host": "LabLink.Example.org",
        "X-Forwarded-Proto": "https",
        "Origin": "https://lablink.example.org",
    },
    "local stack over http with a port": {
        "Host": "127.0.0.1:8000",
        "X-Forwarded-Proto": "http",
        "Origin": "http://127.0.0.1:8000",
    },
    "the CLI (no Origin)": {"Host": "lablink.example.org", "X-Forwarded-Proto": "https"},
    "same-origin fetch metadata": {
        "Host": "lablink.example.org",
        "X-Forwarded-Proto": "https",
        "Origin": "https://lablink.example.org",
        "Sec-Fetch-Site": "same-origin",
    },
}


@pytest.mark.parametrize("case", sorted(SAME_ORIGIN))
def test_the_dashboards_own_writes_are_accepted(gateway, provisioner, case):
    answer = gateway.request("POST", "/api/launch", json_body={"num_vms": 1}, headers={**ADMIN, **SAME_ORIGIN[case]})
    assert answer.status == 202, answer.text
    assert provisioner.wait(60)


def test_a_json_content_type_with_a_charset_is_json(gateway, provisioner):
    headers = {**ADMIN, "Content-Type": "application/json; charset=utf-8"}
    answer = gateway.request("POST", "/api/destroy", body="{}", headers=headers)
    assert answer.status == 202, answer.text
    assert provisioner.wait(60)


def test_reads_and_public_posts_are_not_held_to_the_admin_write_rules(gateway):
    assert gateway.request("GET", "/api/vms", headers={**ADMIN, "Origin": "https://evil.example"}).status == 200
    form = {"email": "a@example.org", "crd_command": "start-host --code=4/abc"}
    # The researcher's form: a form post by design (no VM is free here, hence the 503 page).
    assert gateway.request("POST", "/api/request_vm", form=form).status == 503


@pytest.mark.parametrize("name", sorted(STATIC_TYPES))
def test_each_page_file_is_served_with_its_type_and_cached_for_its_version(gateway, name):
    text, version = static_file(name)
    answer = gateway.request("GET", f"/static/{name}?v={version}")
    assert answer.status == 200
    assert answer.text == text == (STATIC_DIR / name).read_text()
    assert answer.header("Content-Type") == STATIC_TYPES[name]
    assert answer.header("Cache-Control") == "public, max-age=31536000, immutable"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    # An old page asking for another version gets today's file, checked again each time.
    assert gateway.request("GET", f"/static/{name}?v=0000").header("Cache-Control") == "no-cache"
    assert gateway.request("GET", f"/static/{name}").header("Cache-Control") == "no-cache"


@pytest.mark.parametrize(
    "name",
    [
        "render.py",
        "__init__.py",
        "page.html",
        "..%2Frender.py",
        "..%2F..%2Fconfig.py",
        "%2E%2E",
        "admin.js%00",
        "ADMIN.JS",
    ],
)
def test_nothing_but_the_page_files_is_served(gateway, name):
    answer = gateway.request("GET", f"/static/{name}")
    assert answer.status == 404
    assert "error" in answer.json()


def test_a_path_below_static_is_no_route(gateway):
    # {name} is one path segment, in API Gateway as in the emulator: ../ cannot climb.
    # No route: API Gateway's MISSING_AUTHENTICATION_TOKEN, which our gateway response makes a 404.
    assert gateway.request("GET", "/static/../routes.py").status == 404
    assert gateway.request("GET", "/static/templates/page.html").status == 404


def test_the_pages_load_their_files_from_the_stage_root(gateway):
    page = gateway.request("GET", "/").text
    assert '<base href="/prod/">' in page
    urls = re.findall(r'(?:href|src)="(static/[^"]+)"', page)
    assert sorted(urls) == sorted(
        [f"static/page.css?v={static_file('page.css')[1]}", f"static/researcher.js?v={static_file('researcher.js')[1]}"]
    )
    for url in urls:
        assert gateway.request("GET", "/" + url).status == 200


def test_every_file_the_dashboard_loads_is_served_and_nothing_is_inline(gateway):
    """pool.js was once left out of STATIC_TYPES: the page asked for it and got a 404, so the
    pool panel and the summary stayed empty. The CSP allows no inline script or style, so
    the page holds none (no <style>, no style attribute, no script without src)."""
    page = gateway.request("GET", "/admin", headers=ADMIN).text
    urls = re.findall(r'(?:href|src)="(static/[^"]+)"', page)
    assert {url.split("?")[0] for url in urls} == {"static/page.css", "static/admin.css", "static/pool.js", "static/admin.js"}
    for url in urls:
        assert gateway.request("GET", "/" + url).status == 200, url
    assert "<style" not in page and " style=" not in page
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
