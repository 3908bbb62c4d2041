"""The per-process configuration and database connection of a function (and of the local
stack, which runs every function in one process).

Kept apart from the API plumbing so that functions without HTTP routes (authorizer, log
processor, provisioning) do not import the Powertools resolver on a cold start.
"""

from __future__ import annotations

import os
import threading

from lablink import environment
from lablink.config import LablinkConfig, load_config
from lablink.db.connection import database_url
from lablink.db.database import Database

# Keyed by what the environment says now, so a changed environment (tests, the local
# stack) gets its own; in Lambda this is one of each per execution environment.

_lock = threading.Lock()
_configs: dict[str, LablinkConfig] = {}
_databases: dict[tuple[str, str, str], Database] = {}


def config() -> LablinkConfig:
    key = os.environ.get(environment.CONFIG_JSON, "") + "\0" + os.environ.get(environment.CONFIG_FILE, "")
    with _lock:
        if key not in _configs:
            _configs[key] = load_config()
        return _configs[key]


def database(actor: str = "api") -> Database:
    """One connection per process and actor, whatever thread asks (a Database serializes its
    statements; the inline provisioning step opens its own)."""
    cfg = config()
    key = (database_url(), cfg.db.table_name, actor)
    with _lock:
        if key not in _databases:
            _databases[key] = Database(key[0], cfg.db, actor=actor)
        return _databases[key]


def close_databases() -> None:
    """Close every cached connection (tests between databases, local stack shutdown)."""
    with _lock:
        databases = list(_databases.values())
        _databases.clear()
    for db in databases:
        db.close()
