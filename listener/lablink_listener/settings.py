"""The listener's settings, from the environment (the container) or from arguments (tests)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lablink.config import DbConfig, LablinkConfig, ListenerConfig, load_config

# application_name of the listener's connections, to find them in pg_stat_activity.
LISTEN_APPLICATION_NAME = "lablink-listener"
QUERY_APPLICATION_NAME = "lablink-listener-query"

_DEFAULTS = ListenerConfig()


@dataclass(frozen=True)
class Settings:
    # A libpq URL; None means the standard PG* variables (PGHOST, PGPORT, PGUSER,
    # PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT), which asyncpg reads itself.
    dsn: str | None = None
    db: DbConfig = field(default_factory=DbConfig)
    host: str = "127.0.0.1"
    port: int = 8080
    heartbeat_seconds: float = _DEFAULTS.heartbeat_seconds
    # How often the rows of all waiters are read again (catches deleted VMs and proves
    # the LISTEN connection is alive).
    reconcile_seconds: float = 15.0
    # The longest `wait=` a client may ask for: it ends before the load balancer's idle timeout,
    # which derives from the same configuration (ListenerConfig.max_wait_seconds).
    max_wait_seconds: float = _DEFAULTS.max_wait_seconds
    query_pool_size: int = 4
    reconnect_initial_seconds: float = 0.1
    # A few listener tasks, one connection each: retrying every 1-2 s costs the database
    # nothing, and readiness (and delivery) comes back within 2 s of the database.
    reconnect_max_seconds: float = 2.0
    # How long a SIGTERM waits for open requests to finish once their waiters are released.
    shutdown_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, config: LablinkConfig | None = None) -> Settings:
        """DATABASE_URL (else the PG* variables), LISTENER_HOST, LISTENER_PORT,
        LISTENER_RECONCILE_SECONDS, and the LabLink configuration (table, channel, heartbeat and
        the `wait=` cap)."""
        config = config or load_config()
        return cls(
            dsn=environ.get("DATABASE_URL") or None,
            db=config.db,
            host=environ.get("LISTENER_HOST", cls.host),
            port=int(environ.get("LISTENER_PORT", cls.port)),
            heartbeat_seconds=config.listener.heartbeat_seconds,
            max_wait_seconds=config.listener.max_wait_seconds,
            reconcile_seconds=float(environ.get("LISTENER_RECONCILE_SECONDS", cls.reconcile_seconds)),
        )
