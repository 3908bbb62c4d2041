"""While PostgreSQL cannot be reached, every route that needs it answers 503 with
Retry-After (the researcher's page and form with an HTML page), never a 500; the authorizer
fails closed; nothing is written, and the API works again once the database is back.

"Unreachable" is a port on 127.0.0.1 that is bound but never listens: the connection is
refused at once, as for a database that is down. In AWS an authorizer cannot answer 503 (a
raised error is a 500, "authorizer configuration error"), so for VM-token routes, whose
authorizer needs the database, the answer is the authorizer's deny (403) and the test holds
that; the functions behind those routes answer 503 themselves when the database goes
between the authorizer and them."""

from __future__ import annotations

import json
import socket

import pytest
from api_support import ADMIN, bearer

from lablink.api.http import DATABASE_UNREACHABLE, RETRY_AFTER_SECONDS
from lablink.routes import ROUTES, Auth, Route
from lablink_local.gateway import LambdaContext, load_function

CRD = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AbCd_e-F" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
OPERATION = "00000000-0000-4000-8000-000000000000"
# Routes that never read the database: they keep answering during an outage.
WITHOUT_DATABASE = {("GET", "/openapi.json"), ("GET", "/static/{name}")}


def _body(route: Route, hostname: str) -> object:
    return {
        "/api/request_vm": {"email": "ada@example.org", "crd_command": CRD},
        "/api/launch": {"num_vms": 1},
        "/api/destroy": {},
        "/api/vm-status": {"hostname": hostname, "status": "running"},
        "/api/vm-metrics/{hostname}": {"cloud_init_start": 1_700_000_000},
        "/api/gpu_health": {"hostname": hostname, "gpu_status": "Healthy"},
        "/api/update_inuse_status": {"hostname": hostname, "status": True},
        "/api/pool": {"min_free": 1},
        "/api/vms/{hostname}/recycle": {},
        "/api/vms/{hostname}/reboot": {},
        "/api/access": {"code": None},
    }.get(route.path) if route.method in ("POST", "PUT") else None


def _path(route: Route, hostname: str) -> str:
    return route.path.replace("{hostname}", hostname).replace("{operation_id}", OPERATION)


@pytest.fixture
def vm(vm_factory):
    return vm_factory()


@pytest.fixture
def unreachable(monkeypatch, api_env):
    """Point the functions at a database that refuses connections; restore afterwards."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        monkeypatch.setenv("DATABASE_URL", f"postgresql://lablink@127.0.0.1:{closed.getsockname()[1]}/lablink?connect_timeout=2")
        yield
        monkeypatch.undo()


def _assert_retry_later(response, content_type: str = "application/json") -> None:
    assert response.status == 503, response.body
    assert response.header("Retry-After") == str(RETRY_AFTER_SECONDS)
    assert (response.header("Content-Type") or "").startswith(content_type)


DATABASE_ROUTES = [route for route in ROUTES if (route.method, route.path) not in WITHOUT_DATABASE]


@pytest.mark.parametrize("route", DATABASE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_answers_503_with_retry_after_or_the_authorizer_denies(gateway, vm, unreachable, route):
    hostname, token = vm
    auth = {Auth.ADMIN: ADMIN, Auth.VM: bearer(token), Auth.PUBLIC: {}}[route.auth]
    response = gateway.request(route.method, _path(route, hostname), headers=auth, json_body=_body(route, hostname))
    if route.auth is Auth.VM:
        assert response.status == 403, response.body  # fails closed: neither 500 nor allowed through
        return
    if route.path == "/":
        _assert_retry_later(response, "text/html")
        assert "The database is unreachable" in response.body.decode()
        return
    _assert_retry_later(response)
    assert response.json() == {"error": DATABASE_UNREACHABLE}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.auth is Auth.VM], ids=lambda r: f"{r.method} {r.path}")
def test_vm_routes_answer_503_when_the_database_goes_after_the_authorizer(gateway, vm, unreachable, route):
    hostname, _ = vm
    path = _path(route, hostname)
    parameters = {"hostname": hostname} if "{hostname}" in route.path else {}
    body = json.dumps(_body(route, hostname)).encode()
    event = gateway.proxy_event(route, route.method, path, parameters, [], {"Content-Type": "application/json"}, body, "10.0.0.1")
    event["requestContext"]["authorizer"] = {"role": "vm", "hostname": hostname, "principalId": f"vm:{hostname}"}
    response = gateway._response(load_function(route.function.value).handler(event, LambdaContext(route.function.value)))
    _assert_retry_later(response)
    assert response.json() == {"error": DATABASE_UNREACHABLE}


def test_routes_without_the_database_keep_answering(gateway, unreachable):
    assert gateway.request("GET", "/openapi.json").status == 200


def test_the_researchers_form_gets_an_html_page(gateway, unreachable):
    response = gateway.request("POST", "/api/request_vm", form={"email": "ada@example.org", "crd_command": CRD})
    _assert_retry_later(response, "text/html")
    page = response.body.decode()
    assert "The database is unreachable" in page and f"Wait {RETRY_AFTER_SECONDS} seconds" in page


def test_an_invalid_form_during_an_outage_still_gets_the_page(gateway, unreachable):
    """The form's error page shows the free count, which needs the database."""
    response = gateway.request("POST", "/api/request_vm", form={"email": "not an address", "crd_command": CRD})
    _assert_retry_later(response, "text/html")


def test_nothing_is_written_and_requests_work_when_the_database_is_back(gateway, vm_factory, dump, monkeypatch, api_env):
    vm_factory()
    before = dump()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        with monkeypatch.context() as outage:
            outage.setenv("DATABASE_URL", f"postgresql://lablink@127.0.0.1:{closed.getsockname()[1]}/lablink")
            assert gateway.request("POST", "/api/request_vm", json_body={"email": "ada@example.org", "crd_command": CRD}).status == 503
            assert gateway.request("POST", "/api/destroy", headers=ADMIN, json_body={}).status == 503
    assert dump() == before
    answer = gateway.request("POST", "/api/request_vm", json_body={"email": "ada@example.org", "crd_command": CRD})
    assert answer.status == 200, answer.body
