"""A PostgreSQL for the local stack, the tests and the benchmarks, when DATABASE_URL names none.

It starts a throwaway cluster from the machine's PostgreSQL binaries (through
``runuser -u postgres`` when running as root, since initdb refuses root), or, on a machine
with no PostgreSQL installed, from the ``pgserver`` package's embedded binaries.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

from lablink.config import DbConfig
from lablink.migrations import migrate
from lablink_local.lifeline import guard

DEFAULT_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Enough for the concurrency tests (hundreds of connections) and the benchmarks.
    "max_connections": "600",
    # Throwaway data: durability buys nothing and costs seconds.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for directory in candidates:
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class LocalPostgres:
    """One throwaway cluster: ``start()`` returns its superuser URL; ``stop()`` removes it."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None):
        self.port = port or free_port()
        self._owned_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="lablink-pg-"))
        self._as_root = os.geteuid() == 0
        self._bindir = _bindir()
        self._pgserver: Any = None  # the embedded server (pgserver has no type information)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        if self._bindir is None:
            raise RuntimeError("no PostgreSQL binaries found")
        command = [str(self._bindir / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> str:
        if self._bindir is None:
            return self._start_embedded()
        if self._as_root:
            shutil.chown(self.data_dir, "postgres", "postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self._pg_ctl_start()
        return self.url

    def _pg_ctl_start(self) -> None:
        options = " ".join(f"-c {k}={v}" for k, v in DEFAULT_SETTINGS.items())
        options += f" -p {self.port} -k {self.data_dir}"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "start")
        # pg_ctl leaves the postmaster behind as an orphan, which no parent-death signal reaches:
        # should `lablink local` die, its watchdog shuts it down at once (SIGQUIT: immediate).
        postmaster_pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        guard(postmaster_pid, signal.SIGQUIT, files=self.data_dir if self._owned_dir else None)

    def _start_embedded(self) -> str:
        try:
            import pgserver
        except ImportError:
            raise RuntimeError(
                "no PostgreSQL found: install it (apt-get install postgresql) or set DATABASE_URL"
            ) from None
        self._pgserver = pgserver.get_server(str(self.data_dir), cleanup_mode="stop")
        uri = urlsplit(self._pgserver.get_uri())
        return urlunsplit(uri)

    def stop(self, remove: bool = True) -> None:
        if self._pgserver is not None:
            self._pgserver.cleanup()
        elif (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        if remove and self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (every connection drops), stay down a while, start it again."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        time.sleep(down_seconds)
        self._pg_ctl_start()


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def as_login(url: str, role: str) -> str:
    """``url`` logged in as ``role``, with no password: the throwaway servers trust every local
    login (initdb -A trust), so the application role needs none here (in AWS it has one, from
    Secrets Manager). A DATABASE_URL server that asks for passwords must trust ``role`` too."""
    parts = urlsplit(url)
    address = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{address}"))


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE (from a template when given); returns the new database's URL."""
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            cur.execute(statement)
    finally:
        conn.close()
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@contextmanager
def database_server():
    """The superuser URL of DATABASE_URL's server, or of a throwaway cluster started for the
    duration of the block."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = LocalPostgres()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def create_migrated_database(admin_url: str, name: str, db: DbConfig | None = None) -> str:
    url = create_database(admin_url, name)
    migrate(url, db or DbConfig())
    return url
