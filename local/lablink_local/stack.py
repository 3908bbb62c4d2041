"""`lablink local`: run the system on this machine.

For now it provides the database: DATABASE_URL's server, or a throwaway cluster, with the
schema applied; it prints where it runs and stops everything it started on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading

from lablink.config import load_config
from lablink_local.postgres import create_migrated_database, database_server, drop_database

LOCAL_DATABASE = "lablink_local"


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("starting PostgreSQL ...", flush=True)
    with database_server() as admin_url:
        drop_database(admin_url, LOCAL_DATABASE)
        url = create_migrated_database(admin_url, LOCAL_DATABASE, config.db)
        print(f"database ready, schema applied: DATABASE_URL={url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        stop.wait()
        print("stopping ...", flush=True)
        drop_database(admin_url, LOCAL_DATABASE)
    return 0
