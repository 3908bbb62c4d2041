"""A client of LabLink's REST API, for the local stack and for a deployment alike: the admin
routes with HTTP basic auth, and the researcher's public ones. One ``requests.Session`` per
client, so that a command's many calls (a launch's progress polls) reuse one connection."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence

import requests
from requests.auth import HTTPBasicAuth

from lablink.api.gateway_errors import GATEWAY_ERRORS

DEFAULT_URL = "http://127.0.0.1:8000/local"
FINISHED = ("succeeded", "failed", "partial", "cancelled")


class ApiCallFailed(RuntimeError):
    """The API refused or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _root_cause(error: BaseException) -> BaseException:
    """The socket error under requests' and urllib3's wrappers: it says it plainly
    ("[Errno 111] Connection refused", "timed out")."""
    while (inner := error.__cause__ or error.__context__) is not None:
        error = inner
    return error


CHECK_URL = (
    "LABLINK_URL (or --url) must be the API's root with its stage, as `cdk deploy` prints it "
    "(https://ID.execute-api.REGION.amazonaws.com/prod), or http://127.0.0.1:8000/local for `lablink local`; "
    "without /api or /admin"
)


# API Gateway's answer (the stack's gateway response) for a route it does not have.
NO_ROUTE = GATEWAY_ERRORS["MISSING_AUTHENTICATION_TOKEN"]


def _no_route(status: int, message: str) -> bool:
    """API Gateway's answer when no deployed route matches the stage, path and method: our
    gateway response, or, as the request carries Basic credentials, a 403 complaint about its
    Authorization header that echoes them (so that message is never printed)."""
    if status == NO_ROUTE.status and message == NO_ROUTE.message:
        return True
    return status == 403 and ("in Authorization header" in message or "Authorization header requires" in message)


def _unreachable(url: str, error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        why = "connection refused: no server is running at that address (start `lablink local`, or check the host and port)"
    elif isinstance(error, socket.gaierror):
        why = "its host name does not resolve (a typo in the host?)"
    elif isinstance(error, TimeoutError | socket.timeout):
        why = "no answer in time (a firewall, or the wrong host?)"
    else:
        why = str(error)
    return f"cannot reach {url}: {why}. {CHECK_URL}"


def explain_refusal(url: str, answer: requests.Response) -> str:
    if answer.status_code == 401:
        return "the admin user or password is wrong (HTTP 401): see --user/--password or LABLINK_ADMIN_USER/LABLINK_ADMIN_PASSWORD"
    try:
        found = answer.json() if answer.content else {}
    except ValueError:
        found = {}
    if not isinstance(found, dict):
        found = {}
    message = str(found.get("error") or found.get("message") or found.get("Message") or "")
    if _no_route(answer.status_code, message):
        return f"{url} is no LabLink route (API Gateway has no such route): the base path or stage is wrong. {CHECK_URL}"
    if answer.status_code == 403 and message == "Forbidden":
        # API Gateway's answer for a stage it does not have, and its firewall's (deploy.waf).
        return f"{url} was refused by API Gateway (403 Forbidden): check the stage in the URL. {CHECK_URL}"
    if answer.status_code == 404 and "error" not in found:
        return f"{url} is no LabLink route (HTTP 404 from something that is not LabLink's API). {CHECK_URL}"
    return f"{message or answer.reason} (HTTP {answer.status_code})"


class AdminClient:
    def __init__(self, url: str, user: str = "admin", password: str = "", timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        # As bytes, so that the credentials go as UTF-8 (requests encodes text as Latin-1).
        self._credentials = HTTPBasicAuth(user.encode(), password.encode())
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"

    def call(self, method: str, path: str, body: object = None, *, admin: bool = True) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request; ApiCallFailed for 4xx/5xx and
        network failures."""
        url = self.url + path
        try:
            answer = self._session.request(method, url, json=body, auth=self._credentials if admin else None, timeout=self.timeout)
        except requests.RequestException as error:
            raise ApiCallFailed(_unreachable(url, _root_cause(error))) from None
        if answer.status_code >= 400:
            raise ApiCallFailed(explain_refusal(url, answer), answer.status_code)
        return answer.status_code, answer.headers.get("Content-Type", ""), answer.content

    def call_json(self, method: str, path: str, body: object = None, *, admin: bool = True):
        _, content_type, content = self.call(method, path, body, admin=admin)
        try:
            return json.loads(content)
        except ValueError:
            # A web server that is not LabLink's API (a page at that address, a proxy).
            raise ApiCallFailed(
                f"{self.url + path} answered {content_type or 'something'}, not LabLink's JSON. {CHECK_URL}"
            ) from None

    def get_json(self, path: str, *, admin: bool = True):
        return self.call_json("GET", path, admin=admin)

    def post_json(self, path: str, body: object, *, admin: bool = True):
        return self.call_json("POST", path, body, admin=admin)

    # -- the API ----------------------------------------------------------------------------

    def launch(self, count: int) -> dict:
        return self.post_json("/api/launch", {"num_vms": count})

    def destroy(self, hostnames: Sequence[str] | None = None) -> dict:
        return self.post_json("/api/destroy", {"hostnames": list(hostnames)} if hostnames else {})

    def operation(self, operation_id: str) -> dict:
        return self.get_json(f"/api/operations/{urllib.parse.quote(operation_id, safe='')}")

    def wait_operation(self, operation_id: str, on_progress: Callable[[dict], None], poll: float = 0.5, timeout: float = 3600) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = self.operation(operation_id)
            on_progress(found)
            if found["status"] in FINISHED:
                return found
            if time.monotonic() > deadline:
                raise ApiCallFailed(f"operation {operation_id} has not finished after {timeout:g} s")
            time.sleep(poll)

    def status(self) -> dict[str, int]:
        return self.get_json("/api/status")

    def vms(self) -> list[dict]:
        return self.get_json("/api/vms")["vms"]

    def logs(self, hostname: str) -> str:
        return self.get_json(f"/api/vm-logs/{urllib.parse.quote(hostname, safe='')}")["logs"]

    def export(self, fmt: str) -> str:
        return self.call("GET", f"/api/export-metrics?format={urllib.parse.quote(fmt)}")[2].decode()

    def access(self) -> dict:
        return self.get_json("/api/access")

    def set_access(self, changes: dict) -> dict:
        """PUT /api/access: the fields left out are kept."""
        return self.call_json("PUT", "/api/access", changes)

    def pool(self) -> dict:
        return self.get_json("/api/pool")

    def set_pool(self, changes: dict) -> dict:
        return json.loads(self.call("PUT", "/api/pool", changes)[2])

    def pool_status(self) -> dict:
        return self.get_json("/api/pool/status")

    def history(self, fmt: str) -> str:
        return self.call("GET", f"/api/history?format={urllib.parse.quote(fmt)}")[2].decode()

    def recycle(self, hostname: str) -> dict:
        return self.post_json(f"/api/vms/{urllib.parse.quote(hostname, safe='')}/recycle", {})

    def reboot(self, hostname: str) -> dict:
        return self.post_json(f"/api/vms/{urllib.parse.quote(hostname, safe='')}/reboot", {})

    def free_count(self) -> int:
        return self.get_json("/api/unassigned_vms_count", admin=False)["count"]

    def request_vm(self, email: str, crd_command: str, access_code: str | None = None) -> dict:
        """The researcher's request (public route)."""
        body = {"email": email, "crd_command": crd_command}
        if access_code is not None:
            body["access_code"] = access_code
        return self.post_json("/api/request_vm", body, admin=False)
