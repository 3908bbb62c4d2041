"""A PgBouncer in front of a PostgreSQL server: the functions' connection pooler, standing in
for RDS Proxy in the local stack, the tests and the benchmarks (docs/RDS-PROXY.md).

Transaction mode, default startup-parameter handling: like RDS Proxy it refuses startup
options (``options=-c ...``), hands a server connection to a client for one transaction only,
and so punishes session state. Client authentication is ``trust`` against a userlist of the
server's user and the given logins (the application role, as RDS Proxy admits only the role
whose secret it holds): the throwaway servers trust every local connection, so no password is
listed, and what RDS Proxy's authentication adds (IAM, Secrets Manager) is outside what the
code under test can get wrong. PgBouncer logs in to the server as the client's user.
PgBouncer refuses to run as root, so as root it runs as ``postgres`` (as initdb does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

from lablink_local.lifeline import die_with_parent, guard
from lablink_local.postgres import free_port
from lablink_local.waiting import accepts_connections

HOST = "127.0.0.1"
# RDS Proxy's pool, as the benchmarks assume it (bench/assign_burst.py).
DEFAULT_POOL_SIZE = 16


def _binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None)
    if found is None:
        raise RuntimeError("no PgBouncer found: install it (apt-get install pgbouncer; scripts/bootstrap.sh does as root)")
    return found


class LocalPgBouncer:
    """``start()`` runs PgBouncer in front of ``server_url``'s server (every database on it,
    one pool of ``pool_size`` server connections each per user), admitting the server's user
    and ``logins``; ``pooled(url)`` is the URL of one of its databases through the pooler;
    ``stop()`` ends it and removes its files."""

    def __init__(self, server_url: str, pool_size: int = DEFAULT_POOL_SIZE, logins: Sequence[str] = ()):
        self._server = psycopg2.extensions.parse_dsn(server_url)
        self.pool_size = pool_size
        self._users = list(dict.fromkeys([self._server.get("user", "postgres"), *logins]))
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="lablink-pgbouncer-"))
        self._process: subprocess.Popen | None = None

    def pooled(self, database_url: str) -> str:
        """``database_url`` (a database on the server) reached through this pooler."""
        parts = urlsplit(database_url)
        user = parts.username or self._server.get("user", "postgres")
        return urlunsplit(parts._replace(netloc=f"{user}@{HOST}:{self.port}"))

    def _write_config(self) -> Path:
        (self._dir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in self._users))
        server_host = self._server.get("host", HOST)
        server_port = self._server.get("port", "5432")
        config = self._dir / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    # Every database of the server, each with its own pool (as RDS Proxy's one target).
                    f"* = host={server_host} port={server_port}",
                    "[pgbouncer]",
                    f"listen_addr = {HOST}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    # Every login may read the console (SHOW POOLS): the soak counts clients there.
                    f"stats_users = {', '.join(self._users)}",
                    f"auth_file = {self._dir / 'userlist.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {self.pool_size}",
                    # By default PgBouncer waits 15 s after a failed server login before the next,
                    # holding every query that long after a short database restart (the fault
                    # proof restarts PostgreSQL): a PgBouncer habit, not an RDS Proxy limit.
                    "server_login_retry = 1",
                    "max_client_conn = 2000",
                    f"logfile = {self._dir / 'pgbouncer.log'}",
                    "",
                ]
            )
        )
        return config

    def start(self) -> LocalPgBouncer:
        config = self._write_config()
        command = [_binary(), str(config)]
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres", "postgres")
            for path in self._dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        # Stops with its starter even when that is killed: as root, runuser gets the signal and
        # passes it on to PgBouncer; the watchdog (when one runs) signals the whole group.
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
        )
        guard(self._process.pid, group=True, files=self._dir)
        deadline = time.monotonic() + 30
        while not accepts_connections(HOST, self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self._dir / "pgbouncer.log"
                self.stop()
                raise RuntimeError("PgBouncer did not start: " + (log.read_text()[-2000:] if log.exists() else "no log"))
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            # Its own process group: runuser and PgBouncer both get the signal.
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalPgBouncer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def pool_connections(pooled_url: str) -> tuple[int, int]:
    """(clients, server connections) of the pools of ``pooled_url``'s database, from the console
    of the PgBouncer it goes through. PgBouncer keeps its server connections open once made (up
    to the pool size), so a count of them in pg_stat_activity follows the busiest moment so far;
    its clients follow what the processes hold."""
    parts = urlsplit(pooled_url)
    database = parts.path.lstrip("/")
    console = psycopg2.connect(host=parts.hostname, port=parts.port, dbname="pgbouncer", user=parts.username)
    try:
        console.autocommit = True  # the console runs no transactions
        with console.cursor() as cur:
            cur.execute("SHOW POOLS")
            names = [column.name for column in cur.description or ()]
            pools = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        console.close()
    mine = [pool for pool in pools if pool["database"] == database]
    clients = sum(pool["cl_active"] + pool["cl_waiting"] for pool in mine)
    servers = sum(
        value for pool in mine for key, value in pool.items() if key.startswith("sv_") and isinstance(value, int)
    )
    return clients, servers
