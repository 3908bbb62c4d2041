"""The ``lablink`` command: its parser, and the errors every subcommand may end with."""

from __future__ import annotations

import argparse
import sys

from lablink.config import ConfigError
from lablink_cli import admin, pool, system


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lablink", description="LabLink Serverless")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    system.add_system_commands(commands)
    admin.add_commands(commands)
    pool.add_commands(commands)
    system.add_listener_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, RuntimeError) as error:  # the API client's ApiCallFailed is a RuntimeError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
