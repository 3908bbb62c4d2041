"""The OpenAPI document: generated from the resolvers, committed, served, complete."""

from __future__ import annotations

import json
from pathlib import Path

from lablink.api.openapi import openapi_document, render
from lablink.routes import ROUTES, Auth

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_committed_copy_is_current():
    assert COMMITTED.read_text() == render(), "docs/openapi.json is stale: run `python -m lablink.api.openapi > docs/openapi.json`"


def test_every_route_is_documented_with_its_security():
    paths = openapi_document()["paths"]
    for route in ROUTES:
        operation = paths[route.path][route.method.lower()]
        expected = {Auth.PUBLIC: [], Auth.ADMIN: [{"adminBasic": []}], Auth.VM: [{"vmBearer": []}]}[route.auth]
        assert operation["security"] == expected, route
        assert operation.get("summary"), route


def test_served_publicly(gateway):
    answer = gateway.request("GET", "/openapi.json")
    assert answer.status == 200
    assert answer.json() == json.loads(COMMITTED.read_text())
