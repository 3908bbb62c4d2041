"""`lablink launch|status|vms|logs|export|destroy|access`: the admin's commands, through the REST API.

Endpoint and credentials come from options or the environment: LABLINK_URL (the API's root,
stage included), LABLINK_ADMIN_USER (default admin), LABLINK_ADMIN_PASSWORD. Output is a
table for people; ``--json`` prints the API's JSON for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time

from lablink_cli.client import DEFAULT_URL, AdminClient, ApiCallFailed
from lablink_cli.launch_wait import LaunchState, wait_for_launch
from lablink_cli.output import ProgressBar, StatusLine, new_lines, table, vm_rows

# How long `launch --wait` waits by default: a GPU VM on AWS boots in minutes (the image's
# first start, cloud-init, pulling the client container).
LAUNCH_TIMEOUT_S = 1800


def client_from(args: argparse.Namespace) -> AdminClient:
    password = args.password if args.password is not None else os.environ.get("LABLINK_ADMIN_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise ApiCallFailed("no admin password: give --password or set LABLINK_ADMIN_PASSWORD")
        password = getpass.getpass("admin password: ")
    return AdminClient(args.url or os.environ.get("LABLINK_URL") or DEFAULT_URL, args.user or os.environ.get("LABLINK_ADMIN_USER") or "admin", password)


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


def follow_operation(client: AdminClient, accepted: dict, args: argparse.Namespace) -> int:
    bar = ProgressBar() if not args.json else (lambda _: None)
    final = client.wait_operation(accepted["operation_id"], bar, poll=args.poll)
    if args.json:
        print_json({**final, "hostnames": accepted["hostnames"]})
    else:
        verb = {"launch": "launched", "destroy": "destroyed", "reboot": "rebooted"}[final["kind"]]
        print(f"{final['kind']} {final['status']}: {final['done']} {verb}, {final['failed']} failed (operation {final['operation_id']})")
        if final.get("error"):
            print(f"error: {final['error']}", file=sys.stderr)
    return 0 if final["status"] == "succeeded" else 1


def _requested(kind: str, accepted: dict, what: str) -> None:
    """What an operation's 202 means: asked for, not done."""
    names = accepted["hostnames"]
    listed = f": {', '.join(names)}" if names else ""
    print(f"{kind} requested (operation {accepted['operation_id']}): {len(names)} VMs {what}{listed}")


def _report_launch(state: LaunchState, timed_out: bool, timeout: float) -> None:
    listed = f": {', '.join(state.ready)}" if state.ready else ""
    print(f"{len(state.ready)} of {state.total} VMs ready (operation {state.operation_id}){listed}")
    for hostname, reason in state.failed.items():
        print(f"failed: {hostname}: {reason}", file=sys.stderr)
    if timed_out:
        waiting = [f"{name} (booting)" for name in state.booting] + [f"{name} (requested)" for name in state.requested]
        print(f"not ready after {timeout:g} s: {', '.join(waiting)}", file=sys.stderr)


def cmd_launch(args: argparse.Namespace) -> int:
    client = client_from(args)
    accepted = client.launch(args.count)
    if not args.wait:
        if args.json:
            print_json(accepted)
        else:
            _requested("launch", accepted, "booting")
        return 0
    line = StatusLine()
    show = (lambda _: None) if args.json else (lambda state: line.show(state.progress(), state.finished))
    state, timed_out = wait_for_launch(client, accepted["operation_id"], show, args.timeout, args.poll)
    line.end()
    if args.json:
        print_json(state.as_json(timed_out))
    else:
        _report_launch(state, timed_out, args.timeout)
    return 0 if state.finished and not state.failed else 1


def cmd_destroy(args: argparse.Namespace) -> int:
    if not args.hostnames and not args.yes:
        if not sys.stdin.isatty():
            raise ApiCallFailed("destroying every VM needs --yes (or name the VMs to destroy)")
        if input("destroy EVERY VM? type yes: ").strip() != "yes":
            print("nothing destroyed")
            return 1
    client = client_from(args)
    try:
        accepted = client.destroy(args.hostnames or None)
    except ApiCallFailed as error:
        if error.status != 404:
            raise
        print(f"error: {error}", file=sys.stderr)  # names the unknown VMs; nothing was destroyed
        return 1
    if args.wait:
        return follow_operation(client, accepted, args)
    if args.json:
        print_json(accepted)
    else:
        _requested("destroy", accepted, "to destroy")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    counts = client_from(args).status()
    if args.json:
        print_json(counts)
        return 0
    rows = sorted(counts.items())
    print(table(["status", "VMs"], [*rows, ("total", sum(counts.values()))]))
    return 0


def cmd_vms(args: argparse.Namespace) -> int:
    vms = client_from(args).vms()
    if args.json:
        print_json(vms)
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
        print_json({"hostname": args.hostname, "logs": text})
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
    if args.json and args.format == "csv":
        raise ApiCallFailed("--json and --format csv ask for two formats: give one")
    fmt = args.format or ("json" if args.json else "csv")
    text = client_from(args).export(fmt)
    if fmt == "json":
        text = json.dumps(json.loads(text), indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _print_access(access: dict) -> None:
    print(f"access code: {'required' if access['code_required'] else 'none'}")
    print("allowed emails: " + (", ".join(access["allowed_emails"]) or "any"))
    print("allowed domains: " + (", ".join(access["allowed_domains"]) or "any"))


def cmd_access(args: argparse.Namespace) -> int:
    access = client_from(args).access()
    if args.json:
        print_json(access)
    else:
        _print_access(access)
    return 0


def access_changes(args: argparse.Namespace) -> dict:
    """The body of PUT /api/access for `lablink access set`: only what the options name."""
    changes: dict = {}
    if args.no_code:
        changes["code"] = None
    elif args.code is not None:
        changes["code"] = args.code
    if args.clear_lists:
        changes.update(allowed_emails=[], allowed_domains=[])
    if args.allow_email:
        changes["allowed_emails"] = args.allow_email
    if args.allow_domain:
        changes["allowed_domains"] = args.allow_domain
    if not changes:
        raise ApiCallFailed("nothing to change: give --code, --no-code, --allow-email, --allow-domain or --clear-lists")
    return changes


def cmd_access_set(args: argparse.Namespace) -> int:
    access = client_from(args).set_access(access_changes(args))
    if args.json:
        print_json(access)
    else:
        _print_access(access)
    return 0


def _add_access_commands(commands, common: argparse.ArgumentParser) -> None:
    access = commands.add_parser("access", parents=[common], help="who may request a VM: the workshop code and allow-lists")
    access.set_defaults(run=cmd_access)
    change = access.add_subparsers(dest="access_command", metavar="set").add_parser(
        "set",
        parents=[common],
        help="change the access gate (what is not named is kept)",
        description="A list given replaces that list; --clear-lists empties both (anyone may request).",
    )
    code = change.add_mutually_exclusive_group()
    code.add_argument("--code", help="the workshop's access code (a room code shared with the participants)")
    code.add_argument("--no-code", action="store_true", help="no access code")
    change.add_argument("--allow-email", action="append", metavar="EMAIL", help="an email that may request a VM (repeatable)")
    change.add_argument("--allow-domain", action="append", metavar="DOMAIN", help="an email domain, subdomains included (repeatable)")
    change.add_argument("--clear-lists", action="store_true", help="empty both lists first: any email may request")
    change.set_defaults(run=cmd_access_set)


def common_options() -> argparse.ArgumentParser:
    """The options every admin command takes: endpoint, credentials, --json."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the API's root URL, stage included (default: $LABLINK_URL or {DEFAULT_URL})")
    common.add_argument("--user", help="admin user (default: $LABLINK_ADMIN_USER or admin)")
    common.add_argument("--password", help="admin password (default: $LABLINK_ADMIN_PASSWORD, else asked)")
    common.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    common.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    return common


def add_commands(commands) -> None:
    """Register the admin subcommands on the `lablink` parser's subparsers."""
    common = common_options()

    launch = commands.add_parser("launch", parents=[common], help="launch N client VMs (--wait: until they are ready)")
    launch.add_argument("count", type=int, metavar="N")
    launch.add_argument(
        "--wait", action="store_true", help="show requested/booting/ready until every VM is ready or failed; exit 1 if one failed"
    )
    launch.add_argument(
        "--timeout", type=float, default=LAUNCH_TIMEOUT_S, help=f"with --wait: stop waiting after this many seconds (default {LAUNCH_TIMEOUT_S})"
    )
    launch.set_defaults(run=cmd_launch)

    commands.add_parser("status", parents=[common], help="how many VMs are in each status").set_defaults(run=cmd_status)
    commands.add_parser("vms", parents=[common], help="every VM: status, health, researcher, startup phases").set_defaults(run=cmd_vms)

    logs = commands.add_parser("logs", parents=[common], help="the recent log of one VM")
    logs.add_argument("hostname", metavar="HOST")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
    logs.set_defaults(run=cmd_logs)

    export = commands.add_parser("export", parents=[common], help="the startup metrics of every VM")
    export.add_argument("--format", choices=("csv", "json"), help="default: csv, or json with --json")
    export.add_argument("-o", "--output", help="write to this file instead of standard output")
    export.set_defaults(run=cmd_export)

    destroy = commands.add_parser("destroy", parents=[common], help="destroy the named VMs, or every VM")
    destroy.add_argument("hostnames", nargs="*", metavar="HOST")
    destroy.add_argument("--yes", action="store_true", help="destroy every VM without asking")
    destroy.add_argument("--wait", action="store_true", help="follow the destroy until it ends; exit 1 unless it succeeded")
    destroy.set_defaults(run=cmd_destroy)

    _add_access_commands(commands, common)
