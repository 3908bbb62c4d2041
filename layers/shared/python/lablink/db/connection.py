"""One PostgreSQL connection per process and actor: opened lazily, re-opened after a failure.

Every operation of the data layer is safe to run again after a lost connection (assignment
returns the same VM to the same email, log events are keyed by their id, the rest are plain
sets), so a statement whose connection broke is retried once on a fresh connection.

A connection keeps no session state: in AWS it is one client of RDS Proxy (PgBouncer locally),
which lends it a server connection for one transaction at a time (TRANSACTION_SETTINGS).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from lablink import environment

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]
Query = str | sql.Composable
Params = Mapping[str, Any] | Sequence[Any] | None
Cursor = psycopg2.extensions.cursor

_RECONNECT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def database_url() -> str:
    """The database to use: DATABASE_URL wherever it is set (local, tests, CLI); in AWS, the
    RDS credentials secret named by DB_SECRET_ARN, reached at DB_HOST (the RDS Proxy for
    Lambdas) over TLS. The secret is read once per execution environment (cached)."""
    if os.environ.get(environment.DATABASE_URL):
        return os.environ[environment.DATABASE_URL]
    if os.environ.get(environment.DB_SECRET_ARN):
        from aws_lambda_powertools.utilities.parameters import get_secret

        secret = json.loads(get_secret(os.environ[environment.DB_SECRET_ARN], max_age=3600))
        return psycopg2.extensions.make_dsn(
            host=os.environ.get(environment.DB_HOST) or secret["host"],
            port=secret.get("port", 5432),
            dbname=os.environ.get(environment.DB_NAME) or secret.get("dbname", "postgres"),
            user=secret["username"],
            password=secret["password"],
            sslmode="require",
        )
    raise RuntimeError(
        f"set {environment.DATABASE_URL} (or {environment.DB_SECRET_ARN} in AWS) to name the PostgreSQL database"
    )


# Sent before every statement, in the same query string: PostgreSQL runs a multi-statement
# query as one (implicit) transaction, and a transaction pooler keeps one server connection
# for a transaction, so the audit trigger (sql/0005_audit.sql) reads this actor for exactly
# that statement (or the surrounding BEGIN ... COMMIT) and the setting ends with it. The time
# zone is not set here (setting TimeZone per transaction cost a fifth of the assignment
# rate): the SQL names UTC where a session's zone would matter. See docs/RDS-PROXY.md.
TRANSACTION_SETTINGS = "SELECT set_config('lablink.actor', %s, true); "


class _SettingCursor(psycopg2.extras.RealDictCursor):
    """A dict-row cursor whose every statement carries the transaction's settings."""

    settings = b""

    def execute(self, query: str | bytes | sql.Composable, vars: Params = None) -> None:
        super().execute(self.settings + self.mogrify(query, vars))

    def control(self, command: str) -> None:
        """BEGIN, COMMIT, ROLLBACK: alone (a ROLLBACK must run in an aborted transaction)."""
        super().execute(command)


class Connection:
    """Runs statements on one connection (its cursors return rows as dicts), in autocommit: a single statement is its own
    transaction with no BEGIN/COMMIT round trips; work that needs several statements asks
    for a transaction (``atomic``). Statements of different threads take turns."""

    def __init__(self, dsn: str, actor: str) -> None:
        self._dsn = dsn
        self.actor = actor
        self._conn: psycopg2.extensions.connection | None = None
        self._settings = b""
        self._lock = threading.Lock()

    def _connect(self) -> psycopg2.extensions.connection:
        # No startup options and no session settings: RDS Proxy and PgBouncer refuse the
        # first, and the second would pin (RDS Proxy) or leak to the next client (PgBouncer).
        conn = psycopg2.connect(self._dsn, connect_timeout=10, application_name=self.actor[:63])
        conn.autocommit = True
        with conn.cursor() as cur:
            self._settings = cur.mogrify(TRANSACTION_SETTINGS, (self.actor,))
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _cursor(self, atomic: bool) -> Iterator[Cursor]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        with conn.cursor(cursor_factory=_SettingCursor) as cur:
            cur.settings = self._settings
            if not atomic:
                yield cur
                return
            cur.control("BEGIN")
            try:
                yield cur
            except BaseException:
                if not conn.closed:
                    try:
                        cur.control("ROLLBACK")
                    except _RECONNECT_ERRORS:
                        conn.close()
                raise
            cur.control("COMMIT")

    def run(self, work: Callable[[Cursor], T], atomic: bool = False) -> T:
        """Run ``work`` (in one transaction when ``atomic``; a single statement, or several
        sent as one string, are atomic anyway). After a broken connection (reconnected) or
        a deadlock/serialization failure, run it once more."""
        with self._lock:
            try:
                with self._cursor(atomic) as cur:
                    return work(cur)
            except _RECONNECT_ERRORS as error:
                broken = self._conn is None or self._conn.closed
                if not broken and not isinstance(error, psycopg2.errors.TransactionRollbackError):
                    raise
                logger.warning("database connection lost (%s); reconnecting", error)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                with self._cursor(atomic) as cur:
                    return work(cur)

    def one(self, query: Query, params: Params = None) -> Row | None:
        def work(cur: Cursor) -> Row | None:
            cur.execute(query, params)
            return cast(Row | None, cur.fetchone()) if cur.description else None

        return self.run(work)

    def scalar(self, query: Query, params: Params = None) -> Any:
        """The first column of a query that always returns one row (count(*), say)."""
        row = self.one(query, params)
        if row is None:
            raise LookupError("the query returned no row")
        return next(iter(row.values()))

    def all(self, query: Query, params: Params = None) -> list[Row]:
        def work(cur: Cursor) -> list[Row]:
            cur.execute(query, params)
            return cast(list[Row], cur.fetchall())

        return self.run(work)

    def rowcount(self, query: Query, params: Params = None) -> int:
        def work(cur: Cursor) -> int:
            cur.execute(query, params)
            return cur.rowcount

        return self.run(work)
