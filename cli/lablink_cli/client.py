"""A client of LabLink's REST API, for the local stack and for a deployment alike: the admin
routes with HTTP basic auth, and the researcher's public ones. One ``requests.Session`` per
client, so that a command's many calls (a launch's progress polls) reuse one connection."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Sequence

import requests
from requests.auth import HTTPBasicAuth

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


def _explain(answer: requests.Response) -> str:
    if answer.status_code == 401:
        return "the admin user or password is wrong (HTTP 401): see --user/--password or LABLINK_ADMIN_USER/LABLINK_ADMIN_PASSWORD"
    try:
        found = answer.json() if answer.content else {}
    except ValueError:
        found = {}
    message = (found.get("error") or found.get("message") or found.get("Message")) if isinstance(found, dict) else None
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
        try:
            answer = self._session.request(
                method, self.url + path, json=body, auth=self._credentials if admin else None, timeout=self.timeout
            )
        except requests.RequestException as error:
            reason = _root_cause(error)
            raise ApiCallFailed(f"cannot reach {self.url}: {reason} (is the stack running? see --url / LABLINK_URL)") from None
        if answer.status_code >= 400:
            raise ApiCallFailed(_explain(answer), answer.status_code)
        return answer.status_code, answer.headers.get("Content-Type", ""), answer.content

    def get_json(self, path: str, *, admin: bool = True):
        return json.loads(self.call("GET", path, admin=admin)[2])

    def post_json(self, path: str, body: object, *, admin: bool = True):
        return json.loads(self.call("POST", path, body, admin=admin)[2])

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
        return json.loads(self.call("PUT", "/api/access", changes)[2])

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
