"""`lablink validate-config|generate-init-sql|migrate|local|listener`: the commands that check,
build or run the system itself. Each imports what it runs only when it runs, so that an
admin command does not pay for the local stack's AWS emulator or the listener's drivers."""

from __future__ import annotations

import argparse
import sys

from lablink.config import ConfigError, load_config, load_config_file

CONFIG_HELP = "configuration file (default: $LABLINK_CONFIG or built-in defaults)"


def _validate_config(args: argparse.Namespace) -> int:
    try:
        load_config_file(args.file)
    except ConfigError as error:
        print(f"[FAIL] {error.source}")
        for reason in error.reasons:
            print(f"  - {reason}")
        return 1
    print(f"[PASS] {args.file} is a valid LabLink configuration")
    return 0


def _generate_init_sql(args: argparse.Namespace) -> int:
    from lablink.migrations import generate_init_sql

    sys.stdout.write(generate_init_sql(load_config(args.config).db))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from lablink.db.connection import database_url
    from lablink.migrations import migrate

    applied = migrate(database_url(), load_config(args.config).db)
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def _local(args: argparse.Namespace) -> int:
    from lablink_cli.demo import start_demo
    from lablink_local.stack import main as run_local

    return run_local(args, on_started=start_demo if args.demo else None)


def _listener(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from lablink_listener.app import run
    from lablink_listener.logs import configure_logging
    from lablink_listener.settings import Settings

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    settings = Settings.from_env(config=load_config(args.config))
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    run(dataclasses.replace(settings, **overrides))
    return 0


def add_system_commands(commands) -> None:
    """validate-config, generate-init-sql, migrate and local, on the `lablink` parser's subparsers."""
    validate = commands.add_parser("validate-config", help="check a configuration file")
    validate.add_argument("file", nargs="?", default="config/lablink.yaml")
    validate.set_defaults(run=_validate_config)

    init_sql = commands.add_parser("generate-init-sql", help="print the complete schema SQL for psql")
    init_sql.add_argument("--config", help=CONFIG_HELP)
    init_sql.set_defaults(run=_generate_init_sql)

    migrate = commands.add_parser("migrate", help="apply pending migrations to $DATABASE_URL")
    migrate.add_argument("--config", help=CONFIG_HELP)
    migrate.set_defaults(run=_migrate)

    local = commands.add_parser("local", help="run the system on this machine")
    local.add_argument("--config", help=CONFIG_HELP)
    local.add_argument("--port", type=int, default=8000, help="HTTP port of the local gateway (0: any free port)")
    local.add_argument("--demo", action="store_true", help="launch 5 VMs and request 3 of them as three researchers")
    local.add_argument("--state-dir", default=".lablink/local", help="where the simulated VMs and the services keep their logs")
    local.add_argument("--vm-boot-seconds", type=float, default=3.0, help="simulated boot time of a VM (jittered)")
    local.add_argument(
        "--reconcile-seconds",
        type=float,
        default=5.0,
        help="run the pool reconciler this often and after each claim (0: off)",
    )
    local.set_defaults(run=_local)


def add_listener_command(commands) -> None:
    listener = commands.add_parser("listener", help="run the listener (long-poll service) on $DATABASE_URL or PG* variables")
    listener.add_argument("--config", help="configuration file (default: $LABLINK_CONFIG_JSON, $LABLINK_CONFIG or built-in defaults)")
    listener.add_argument("--host", help="address to bind (default: $LISTENER_HOST or 127.0.0.1)")
    listener.add_argument("--port", type=int, help="port (default: $LISTENER_PORT or 8080)")
    listener.set_defaults(run=_listener)
