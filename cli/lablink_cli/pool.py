"""`lablink pool [set ...]|history|recycle|reboot`: the pool autopilot's policy and status,
the history of every assignment, and an admin's action on one VM (through the REST API)."""

from __future__ import annotations

import argparse
import re
import sys

from lablink_cli.admin import client_from, common_options, follow_operation, print_json
from lablink_cli.output import duration, table

_DURATION = re.compile(r"^(\d+)([smh]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
LATEST_ACTIONS_SHOWN = 10


def parse_duration(text: str) -> int:
    """Seconds of "90", "90s", "30m" or "3h"."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give seconds, or a number with s, m or h (30m, 3h)"
        )
    return int(found[1]) * _UNIT_SECONDS[found[2]]


def cmd_pool(args: argparse.Namespace) -> int:
    client = client_from(args)
    policy, status = client.pool(), client.pool_status()
    if args.json:
        print_json({"policy": policy, "status": status})
        return 0
    print(
        f"policy: min free {policy['min_free']}, max VMs {policy['max_vms']}, idle timeout {duration(policy['idle_timeout_s'])}, "
        f"max session {duration(policy['max_session_s'])}, unhealthy after {duration(policy['unhealthy_after_s'])}, "
        f"prewarm {duration(policy['prewarm_s'])}{', PAUSED' if policy['paused'] else ''}"
    )
    print(
        f"free: {status['free']} of {status['target_free']} wanted "
        f"(assigned {status['assigned']}, booting {status['booting']}, unhealthy {status['unhealthy']})"
    )
    print(f"schedule: opens {status['opens_at'] or '-'}, closes {status['closes_at'] or '-'}")
    print(f"last reconcile: {status['last_reconcile_at'] or 'never'}")
    print(f"cost so far: ${status['cost_usd_so_far']:.2f}")
    for failure in status["failures"]:
        print(f"failed {failure['kind']} at {failure['at']}: {failure['error']}", file=sys.stderr)
    actions = status["actions"][:LATEST_ACTIONS_SHOWN]
    if actions:
        print(
            table(
                ["at", "action", "hostname", "reason"],
                [[a["at"], a["action"], a["hostname"], a["reason"]] for a in actions],
            )
        )
    return 0


def cmd_pool_set(args: argparse.Namespace) -> int:
    changes = {
        field: value
        for field, value in (
            ("min_free", args.min_free),
            ("max_vms", args.max_vms),
            ("idle_timeout_s", args.idle_timeout),
            ("max_session_s", args.max_session),
            ("unhealthy_after_s", args.unhealthy_after),
            ("prewarm_s", args.prewarm),
            ("opens_at", args.opens_at),
            ("closes_at", args.closes_at),
            ("paused", args.paused),
        )
        if value is not None
    }
    # "none" clears a time of the schedule
    changes.update({field: None for field in ("opens_at", "closes_at") if changes.get(field) == "none"})
    if not changes:
        raise RuntimeError("nothing to change: give at least one option (see lablink pool set --help)")
    policy = client_from(args).set_pool(changes)
    if args.json:
        print_json(policy)
    else:
        print("pool policy stored: " + ", ".join(f"{key} {policy[key]}" for key in changes))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    text = client_from(args).history(args.format)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_recycle(args: argparse.Namespace) -> int:
    client = client_from(args)
    accepted = client.recycle(args.hostname)
    if not args.json:
        fresh = ", ".join(accepted["replacement_hostnames"]) or "none (the fleet is full)"
        print(f"recycling {args.hostname}; its replacement: {fresh}")
    return follow_operation(client, accepted, args)


def cmd_reboot(args: argparse.Namespace) -> int:
    client = client_from(args)
    accepted = client.reboot(args.hostname)
    if not args.json:
        print(f"rebooting {args.hostname}")
    return follow_operation(client, accepted, args)


def add_commands(commands) -> None:
    common = common_options()
    pool = commands.add_parser("pool", parents=[common], help="the pool autopilot: its policy and status")
    pool.set_defaults(run=cmd_pool)
    setters = pool.add_subparsers(dest="pool_command", metavar="set")
    change = setters.add_parser("set", parents=[common], help="change the pool policy (the next reconcile applies it)")
    change.add_argument("--min-free", type=int, help="keep this many running, unassigned VMs (0: off)")
    change.add_argument("--max-vms", type=int, help="never more VMs than this")
    change.add_argument(
        "--idle-timeout", type=parse_duration, help="recycle a session not in use this long (30m; 0: off)"
    )
    change.add_argument(
        "--max-session", type=parse_duration, help="recycle a session this long after its assignment (3h; 0: off)"
    )
    change.add_argument("--unhealthy-after", type=parse_duration, help="replace a VM stuck booting or silent this long")
    change.add_argument("--prewarm", type=parse_duration, help="reach min-free this long before opens-at (15m)")
    change.add_argument(
        "--opens-at", metavar="ISO", help="when the workshop opens (2026-03-02T09:00:00Z; none clears it)"
    )
    change.add_argument(
        "--closes-at", metavar="ISO", help="when every VM is destroyed (ISO 8601 with a zone; none clears it)"
    )
    paused = change.add_mutually_exclusive_group()
    paused.add_argument("--pause", dest="paused", action="store_const", const=True, help="stop the autopilot")
    paused.add_argument("--resume", dest="paused", action="store_const", const=False, help="start it again")
    change.set_defaults(run=cmd_pool_set)

    history = commands.add_parser("history", parents=[common], help="every assignment ever made, with its cost")
    history.add_argument("--format", choices=("csv", "json"), default="csv")
    history.set_defaults(run=cmd_history)

    for name, run, text in (
        ("recycle", cmd_recycle, "terminate one VM (its researcher is freed) and launch a fresh one in its place"),
        ("reboot", cmd_reboot, "reboot one VM's instance; it keeps its researcher"),
    ):
        parser = commands.add_parser(name, parents=[common], help=text)
        parser.add_argument("hostname", metavar="HOST")
        parser.set_defaults(run=run)
