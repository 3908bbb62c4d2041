"""The admin's command line (`lablink launch|status|vms|logs|export|destroy`): a client of
the REST API (stdlib only), for the local stack and for a deployment alike.

Endpoint and credentials come from options or the environment: LABLINK_URL (the API's root,
stage included), LABLINK_ADMIN_USER (default admin), LABLINK_ADMIN_PASSWORD. Output is a
table for people; ``--json`` prints the API's JSON for scripts.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence

DEFAULT_URL = "http://127.0.0.1:8000/local"
FINISHED = ("succeeded", "failed", "partial")
PHASES = (
    ("terraformapplydurationseconds", "provisioning"),
    ("cloudinitdurationseconds", "cloud-init"),
    ("containerstartupdurationseconds", "container"),
    ("totalstartupdurationseconds", "total"),
)


class ApiCallFailed(RuntimeError):
    """The API refused or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AdminClient:
    def __init__(self, url: str, user: str = "admin", password: str = "", timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: object = None, *, admin: bool = True) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request; ApiCallFailed for 4xx/5xx and
        network failures."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if admin:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as error:
            raise ApiCallFailed(self._explain(error), error.code) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiCallFailed(f"cannot reach {self.url}: {reason} (is the stack running? see --url / LABLINK_URL)") from None

    def _explain(self, error: urllib.error.HTTPError) -> str:
        if error.code == 401:
            return "the admin user or password is wrong (HTTP 401): see --user/--password or LABLINK_ADMIN_USER/LABLINK_ADMIN_PASSWORD"
        try:
            found = json.loads(error.read() or b"{}")
            message = found.get("error") or found.get("message") or found.get("Message")
        except ValueError:
            message = None
        return f"{message or error.reason} (HTTP {error.code})"

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

    def free_count(self) -> int:
        return self.get_json("/api/unassigned_vms_count", admin=False)["count"]

    def request_vm(self, email: str, crd_command: str) -> dict:
        """The researcher's request (public route)."""
        return self.post_json("/api/request_vm", {"email": email, "crd_command": crd_command}, admin=False)


# -- output -----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _seconds(value) -> str:
    return "" if value is None else f"{value:.1f}"


def vm_rows(vms: Sequence[dict]) -> tuple[list[str], list[list]]:
    headers = ["hostname", "status", "health", "in use", "researcher"] + [label for _, label in PHASES]
    rows = [
        [vm.get("hostname"), vm.get("status"), vm.get("healthy"), "yes" if vm.get("inuse") else "no", vm.get("useremail")]
        + [_seconds(vm.get(key)) for key, _ in PHASES]
        for vm in vms
    ]
    return headers, rows


class ProgressBar:
    """One line redrawn in place on a terminal; a line per change elsewhere."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.last = ""

    def __call__(self, operation: dict) -> None:
        requested = max(operation["requested"], 1)
        finished = operation["done"] + operation["failed"]
        filled = round(self.width * finished / requested) if operation["requested"] else self.width
        text = (
            f"{operation['kind']} [{'#' * filled}{'-' * (self.width - filled)}] "
            f"{finished}/{operation['requested']} ({operation['done']} done, {operation['failed']} failed) {operation['status']}"
        )
        if text == self.last:
            return
        self.last = text
        if self.tty:
            end = "\n" if operation["status"] in FINISHED else ""
            self.stream.write(f"\r{text}{end}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def new_lines(previous: str, current: str) -> list[str]:
    """The lines of ``current`` (a bounded tail of the log) that ``previous`` did not show:
    after the longest run of previous' last lines that begins current."""
    before, after = previous.splitlines(), current.splitlines()
    if not before:
        return after
    for size in range(min(len(before), len(after)), 0, -1):
        if before[-size:] == after[:size]:
            return after[size:]
    return after


# -- commands ---------------------------------------------------------------------------------


def client_from(args: argparse.Namespace) -> AdminClient:
    password = args.password if args.password is not None else os.environ.get("LABLINK_ADMIN_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise ApiCallFailed("no admin password: give --password or set LABLINK_ADMIN_PASSWORD")
        password = getpass.getpass("admin password: ")
    return AdminClient(args.url or os.environ.get("LABLINK_URL") or DEFAULT_URL, args.user or os.environ.get("LABLINK_ADMIN_USER") or "admin", password)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2))


def _follow_operation(client: AdminClient, accepted: dict, args: argparse.Namespace) -> int:
    bar = ProgressBar() if not args.json else (lambda _: None)
    final = client.wait_operation(accepted["operation_id"], bar, poll=args.poll)
    if args.json:
        _print_json({**final, "hostnames": accepted["hostnames"]})
    else:
        verb = "launched" if final["kind"] == "launch" else "destroyed"
        print(f"{final['kind']} {final['status']}: {final['done']} {verb}, {final['failed']} failed (operation {final['operation_id']})")
        if final.get("error"):
            print(f"error: {final['error']}", file=sys.stderr)
    return 0 if final["status"] == "succeeded" else 1


def cmd_launch(args: argparse.Namespace) -> int:
    client = client_from(args)
    accepted = client.launch(args.count)
    if not args.json:
        print(f"launching {len(accepted['hostnames'])} VMs: {', '.join(accepted['hostnames'])}")
    return _follow_operation(client, accepted, args)


def cmd_destroy(args: argparse.Namespace) -> int:
    if not args.hostnames and not args.yes:
        if not sys.stdin.isatty():
            raise ApiCallFailed("destroying every VM needs --yes (or name the VMs to destroy)")
        if input("destroy EVERY VM? type yes: ").strip() != "yes":
            print("nothing destroyed")
            return 1
    client = client_from(args)
    accepted = client.destroy(args.hostnames or None)
    if not args.json:
        print(f"destroying {len(accepted['hostnames'])} VMs")
    return _follow_operation(client, accepted, args)


def cmd_status(args: argparse.Namespace) -> int:
    counts = client_from(args).status()
    if args.json:
        _print_json(counts)
        return 0
    rows = sorted(counts.items())
    print(table(["status", "VMs"], [*rows, ("total", sum(counts.values()))]))
    return 0


def cmd_vms(args: argparse.Namespace) -> int:
    vms = client_from(args).vms()
    if args.json:
        _print_json(vms)
        return 0
    if not vms:
        print("no VMs")
        return 0
    print(table(*vm_rows(vms)))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    client = client_from(args)
    text = client.logs(args.hostname)
    if args.json:
        _print_json({"hostname": args.hostname, "logs": text})
        return 0
    if text:
        print(text, flush=True)
    while args.follow:
        time.sleep(args.poll)
        try:
            current = client.logs(args.hostname)
        except ApiCallFailed as error:
            if error.status == 404:
                print(f"{args.hostname} is gone (destroyed)", file=sys.stderr)
                return 0
            raise
        for line in new_lines(text, current):
            print(line, flush=True)
        text = current
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    text = client_from(args).export(args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def add_commands(commands) -> None:
    """Register the admin subcommands on the `lablink` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the API's root URL, stage included (default: $LABLINK_URL or {DEFAULT_URL})")
    common.add_argument("--user", help="admin user (default: $LABLINK_ADMIN_USER or admin)")
    common.add_argument("--password", help="admin password (default: $LABLINK_ADMIN_PASSWORD, else asked)")
    common.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    common.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    launch = commands.add_parser("launch", parents=[common], help="launch N client VMs and show the progress")
    launch.add_argument("count", type=int, metavar="N")
    launch.set_defaults(run=cmd_launch)

    commands.add_parser("status", parents=[common], help="how many VMs are in each status").set_defaults(run=cmd_status)
    commands.add_parser("vms", parents=[common], help="every VM: status, health, researcher, startup phases").set_defaults(run=cmd_vms)

    logs = commands.add_parser("logs", parents=[common], help="the recent log of one VM")
    logs.add_argument("hostname", metavar="HOST")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
    logs.set_defaults(run=cmd_logs)

    export = commands.add_parser("export", parents=[common], help="the startup metrics of every VM")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("-o", "--output", help="write to this file instead of standard output")
    export.set_defaults(run=cmd_export)

    destroy = commands.add_parser("destroy", parents=[common], help="destroy the named VMs, or every VM")
    destroy.add_argument("hostnames", nargs="*", metavar="HOST")
    destroy.add_argument("--yes", action="store_true", help="destroy every VM without asking")
    destroy.set_defaults(run=cmd_destroy)
