"""The data-access layer: every SQL statement of the application lives in this module.

Values always travel as parameters; the configured table name goes through
``psycopg2.sql.Identifier``. One ``Database`` holds one connection (one per process, or per
thread in tests), opens it lazily and re-opens it after a failure.

Every operation is safe to run again after a lost connection (assignment returns the same
VM to the same email, log events are keyed by their id, the rest are plain sets), so a
statement whose connection broke is retried once on a fresh connection.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extras
from psycopg2 import sql

from lablink.config import DbConfig
from lablink.models import (
    Assignment,
    GpuHealth,
    LogEvent,
    LogIngestResult,
    VmStatus,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_EVENTS_TABLE = sql.Identifier("vm_log_events")
OPERATIONS_TABLE = sql.Identifier("operations")
AUDIT_TABLE = sql.Identifier("vm_audit")

# The Logs column is a bounded view of the newest events (the events table holds them all).
LOGS_TAIL_EVENTS = 500
LOGS_TAIL_CHARS = 64 * 1024

# Assignable: running and unassigned (the seed's rule, plus no email).
FREE_POOL = sql.SQL("crdcommand IS NULL AND useremail IS NULL AND status = 'running'")

# Columns never returned by the read operations: bulky (logs) or secret (token_hash).
HIDDEN_COLUMNS = frozenset({"logs", "token_hash"})

# Startup phases: (request key prefix, start column, end column, duration column).
PHASES = {
    "terraform_apply": ("terraformapplystarttime", "terraformapplyendtime", "terraformapplydurationseconds"),
    "cloud_init": ("cloudinitstarttime", "cloudinitendtime", "cloudinitdurationseconds"),
    "container": ("containerstarttime", "containerendtime", "containerstartupdurationseconds"),
}
# The metric keys of POST /api/vm-metrics and of the provisioning step (epoch seconds).
METRIC_KEYS = {
    "terraform_apply_start": ("terraform_apply", "start"),
    "terraform_apply_end": ("terraform_apply", "end"),
    "terraform_apply_duration_seconds": ("terraform_apply", "duration"),
    "cloud_init_start": ("cloud_init", "start"),
    "cloud_init_end": ("cloud_init", "end"),
    "cloud_init_duration_seconds": ("cloud_init", "duration"),
    "container_start": ("container", "start"),
    "container_end": ("container", "end"),
    "container_startup_duration_seconds": ("container", "duration"),
}

_RECONNECT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


class NoFreeVm(Exception):
    """No running, unassigned VM is left."""


class UnknownVm(LookupError):
    """No VM row has this hostname."""


class FleetFull(Exception):
    """A launch would take the fleet past its configured maximum."""


def database_url() -> str:
    """The database to use: DATABASE_URL wherever it is set (local, tests, CLI); in AWS, the
    RDS credentials secret named by DB_SECRET_ARN, reached at DB_HOST (the RDS Proxy for
    Lambdas) over TLS. The secret is read once per execution environment (cached)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if os.environ.get("DB_SECRET_ARN"):
        from aws_lambda_powertools.utilities.parameters import get_secret

        secret = json.loads(get_secret(os.environ["DB_SECRET_ARN"], max_age=3600))
        return psycopg2.extensions.make_dsn(
            host=os.environ.get("DB_HOST") or secret["host"],
            port=secret.get("port", 5432),
            dbname=secret.get("dbname", "postgres"),
            user=secret["username"],
            password=secret["password"],
            sslmode="require",
        )
    raise RuntimeError("set DATABASE_URL (or DB_SECRET_ARN in AWS) to name the PostgreSQL database")


def new_pin() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def _startup_update_sql(table: sql.Identifier) -> sql.Composed:
    """One UPDATE that merges any subset of phase values into a row and recomputes the total
    from the merged values, in the same statement: whatever order the phases arrive in, the
    last one to arrive sets the total. SET expressions read the row as locked by this UPDATE,
    so concurrent phase reports never compute from stale values.

    A duration is, in order: the one reported now, the one stored, end minus start."""
    assignments = []
    durations = []
    for phase, (start_col, end_col, duration_col) in PHASES.items():
        start = sql.SQL("COALESCE(to_timestamp({p}::float8) AT TIME ZONE 'UTC', {c})").format(
            p=sql.Placeholder(f"{phase}_start"), c=sql.Identifier(start_col)
        )
        end = sql.SQL("COALESCE(to_timestamp({p}::float8) AT TIME ZONE 'UTC', {c})").format(
            p=sql.Placeholder(f"{phase}_end"), c=sql.Identifier(end_col)
        )
        duration = sql.SQL("COALESCE({p}::float8, {c}, EXTRACT(EPOCH FROM ({end} - {start}))::float8)").format(
            p=sql.Placeholder(f"{phase}_duration"), c=sql.Identifier(duration_col), start=start, end=end
        )
        assignments += [
            sql.SQL("{} = {}").format(sql.Identifier(start_col), start),
            sql.SQL("{} = {}").format(sql.Identifier(end_col), end),
            sql.SQL("{} = {}").format(sql.Identifier(duration_col), duration),
        ]
        durations.append(duration)
    assignments.append(
        sql.SQL("totalstartupdurationseconds = {}").format(sql.SQL(" + ").join(durations))
    )
    return sql.SQL(
        "UPDATE {t} SET {sets} WHERE hostname = %(hostname)s RETURNING totalstartupdurationseconds"
    ).format(t=table, sets=sql.SQL(", ").join(assignments))


class Database:
    """All data access of LabLink, on one connection."""

    def __init__(self, dsn: str, db: DbConfig | None = None, actor: str = "lablink"):
        self._dsn = dsn
        self._db = db or DbConfig()
        self._actor = actor
        self._conn: psycopg2.extensions.connection | None = None
        self._lock = threading.Lock()
        self.table = sql.Identifier(self._db.table_name)
        self._startup_update = _startup_update_sql(self.table)

    @classmethod
    def from_env(cls, db: DbConfig | None = None, actor: str = "lablink") -> Database:
        return cls(database_url(), db, actor)

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=10,
            application_name=self._actor[:63],
            options="-c timezone=UTC",
        )
        # Autocommit: a single statement is its own transaction, with no BEGIN/COMMIT round
        # trips; work that needs several statements asks for an explicit transaction.
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lablink.actor', %s, false)", (self._actor,))
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _cursor(self, atomic: bool) -> Iterator[psycopg2.extensions.cursor]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            if not atomic:
                yield cur
                return
            cur.execute("BEGIN")
            try:
                yield cur
            except BaseException:
                if not conn.closed:
                    try:
                        cur.execute("ROLLBACK")
                    except _RECONNECT_ERRORS:
                        conn.close()
                raise
            cur.execute("COMMIT")

    def _run(self, work: Callable[[psycopg2.extensions.cursor], T], atomic: bool = False) -> T:
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

    def _one(self, query: sql.Composable, params: Mapping | Sequence | None = None) -> dict | None:
        def work(cur):
            cur.execute(query, params)
            return cur.fetchone() if cur.description else None

        return self._run(work)

    def _all(self, query: sql.Composable, params: Mapping | Sequence | None = None) -> list[dict]:
        def work(cur):
            cur.execute(query, params)
            return cur.fetchall()

        return self._run(work)

    def _rowcount(self, query: sql.Composable, params: Mapping | Sequence | None = None) -> int:
        def work(cur):
            cur.execute(query, params)
            return cur.rowcount

        return self._run(work)

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(t=self.table)

    # -- schema introspection ---------------------------------------------------------

    def get_column_names(self) -> list[str]:
        rows = self._all(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (self._db.table_name,),
        )
        return [row["column_name"] for row in rows]

    def _visible_columns(self) -> sql.Composed:
        return sql.SQL(", ").join(
            sql.Identifier(c) for c in self.get_column_names() if c not in HIDDEN_COLUMNS
        )

    # -- VM rows ----------------------------------------------------------------------

    def insert_vm(
        self,
        hostname: str,
        *,
        status: VmStatus | str = VmStatus.INITIALIZING,
        instance_id: str | None = None,
        token_hash: str | None = None,
    ) -> bool:
        """Create a VM row; False when the hostname exists already (nothing is changed).
        Hostnames are validated where they enter (the API); here they are plain values."""
        status = _check_status(status)
        return bool(
            self._rowcount(
                self._q(
                    "INSERT INTO {t} (hostname, status, instance_id, token_hash) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (hostname) DO NOTHING"
                ),
                (hostname, status, instance_id, token_hash),
            )
        )

    def get_vm_by_hostname(self, hostname: str) -> dict | None:
        return self._one(
            sql.SQL("SELECT {cols} FROM {t} WHERE hostname = %s").format(
                cols=self._visible_columns(), t=self.table
            ),
            (hostname,),
        )

    def vm_exists(self, hostname: str) -> bool:
        return self._one(self._q("SELECT 1 AS found FROM {t} WHERE hostname = %s"), (hostname,)) is not None

    def get_all_vms(self) -> list[dict]:
        """Every VM with every column but the logs and the token hash, oldest first."""
        return self._all(
            sql.SQL("SELECT {cols} FROM {t} ORDER BY createdat, hostname").format(
                cols=self._visible_columns(), t=self.table
            )
        )

    def get_row_count(self) -> int:
        return self._one(self._q("SELECT count(*) AS n FROM {t}"))["n"]

    def get_hostnames(self) -> list[str]:
        return [r["hostname"] for r in self._all(self._q("SELECT hostname FROM {t} ORDER BY hostname"))]

    def update_vm_status(self, hostname: str, status: VmStatus | str) -> bool:
        """Set a VM's status; False for an unknown VM. A VM that holds an assignment stays
        'assigned' when it reports 'running' again (after a restart, say)."""
        status = _check_status(status)
        return bool(
            self._rowcount(
                self._q(
                    "UPDATE {t} SET status = CASE "
                    "WHEN %(status)s = 'running' AND useremail IS NOT NULL THEN 'assigned' "
                    "ELSE %(status)s END, last_seen_at = now() WHERE hostname = %(hostname)s"
                ),
                {"status": status, "hostname": hostname},
            )
        )

    def update_vm_in_use(self, hostname: str, in_use: bool) -> bool:
        if not isinstance(in_use, bool):
            raise ValueError("in_use must be true or false")
        return bool(
            self._rowcount(
                self._q("UPDATE {t} SET inuse = %s, last_seen_at = now() WHERE hostname = %s"),
                (in_use, hostname),
            )
        )

    def update_health(self, hostname: str, healthy: GpuHealth | str) -> bool:
        try:
            healthy = GpuHealth(healthy)
        except ValueError:
            raise ValueError(
                f"unknown GPU health {healthy!r}; expected one of {', '.join(GpuHealth)}"
            ) from None
        return bool(
            self._rowcount(
                self._q("UPDATE {t} SET healthy = %s, last_seen_at = now() WHERE hostname = %s"),
                (healthy.value, hostname),
            )
        )

    def set_instance(self, hostname: str, instance_id: str) -> bool:
        return bool(
            self._rowcount(self._q("UPDATE {t} SET instance_id = %s WHERE hostname = %s"), (instance_id, hostname))
        )

    def get_token_hash(self, hostname: str) -> str | None:
        row = self._one(self._q("SELECT token_hash FROM {t} WHERE hostname = %s"), (hostname,))
        return row["token_hash"] if row else None

    def delete_vms(self, hostnames: Iterable[str]) -> int:
        return self._rowcount(self._q("DELETE FROM {t} WHERE hostname = ANY(%s)"), (list(hostnames),))

    def clear_database(self) -> int:
        return self._rowcount(self._q("DELETE FROM {t}"))

    # -- assignment -------------------------------------------------------------------

    def assign_vm(self, email: str, crd_command: str) -> Assignment:
        """Give ``email`` a VM: its own when it has one (command and PIN replaced), else one
        running, unassigned VM claimed with FOR UPDATE SKIP LOCKED, in one UPDATE.

        Requests of one email are serialized by a transaction-scoped advisory lock taken by a
        statement sent just before in the same query string (one round trip, one implicit
        transaction; the UPDATE takes a fresh snapshot after the lock), so a second click
        waits for the first and then finds its VM (the unique index on the email backs this
        up). Raises NoFreeVm when no VM is free.
        """
        query = self._q(
            """
            WITH own AS (
                SELECT hostname, TRUE AS rejoined FROM {t}
                WHERE useremail = %(email)s
                FOR UPDATE
            ), free AS (
                SELECT hostname, FALSE AS rejoined FROM {t}
                WHERE NOT EXISTS (SELECT 1 FROM own)
                  AND crdcommand IS NULL AND useremail IS NULL AND status = 'running'
                ORDER BY createdat, hostname
                FOR UPDATE SKIP LOCKED
                LIMIT 1
            ), target AS (
                SELECT * FROM own UNION ALL SELECT * FROM free LIMIT 1
            )
            UPDATE {t} AS vm
               SET useremail = %(email)s,
                   crdcommand = %(command)s,
                   pin = %(pin)s,
                   inuse = FALSE,
                   status = 'assigned',
                   assigned_at = CASE WHEN target.rejoined THEN vm.assigned_at ELSE now() END
              FROM target
             WHERE vm.hostname = target.hostname
            RETURNING vm.hostname, vm.pin, target.rejoined
            """
        )
        params = {"email": email, "command": crd_command, "pin": new_pin()}
        row = self._one(sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended(%(email)s, 0)); ") + query, params)
        if row is None:
            raise NoFreeVm("No available VMs. Please try again later.")
        return Assignment(row["hostname"], row["pin"], row["rejoined"])

    def get_vm_details(self, email: str) -> dict | None:
        """The VM assigned to ``email`` (hostname, pin, crdcommand), or None."""
        return self._one(self._q("SELECT hostname, pin, crdcommand FROM {t} WHERE useremail = %s"), (email,))

    def get_assignment(self, hostname: str) -> dict | None:
        """The row's assignment state for a waiting VM: hostname, crdcommand, pin (None when
        the VM is unknown; crdcommand None while unassigned)."""
        return self._one(self._q("SELECT hostname, crdcommand, pin FROM {t} WHERE hostname = %s"), (hostname,))

    def get_unassigned_vms(self) -> list[str]:
        rows = self._all(
            sql.SQL("SELECT hostname FROM {t} WHERE {free} ORDER BY createdat, hostname").format(t=self.table, free=FREE_POOL)
        )
        return [r["hostname"] for r in rows]

    def count_unassigned_vms(self) -> int:
        return self._one(sql.SQL("SELECT count(*) AS n FROM {t} WHERE {free}").format(t=self.table, free=FREE_POOL))["n"]

    def get_status_counts(self) -> dict[str, int]:
        rows = self._all(self._q("SELECT COALESCE(status, 'unknown') AS status, count(*) AS n FROM {t} GROUP BY 1"))
        return {r["status"]: r["n"] for r in rows}

    def get_all_vm_status(self) -> dict[str, str | None]:
        return {r["hostname"]: r["status"] for r in self._all(self._q("SELECT hostname, status FROM {t} ORDER BY hostname"))}

    # -- startup metrics --------------------------------------------------------------

    def update_vm_metrics(self, hostname: str, metrics: Mapping[str, float | None]) -> float | None:
        """Merge startup-phase values (epoch seconds, or seconds for durations) into a VM and
        return its total startup time (None until all three phases are known).
        Raises UnknownVm; ValueError for an unknown key or a value that is not a number."""
        unknown = set(metrics) - METRIC_KEYS.keys()
        if unknown:
            raise ValueError(f"unknown metric keys: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {f"{phase}_{part}": None for phase in PHASES for part in ("start", "end", "duration")}
        for key, value in metrics.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{key} must be a number")
            phase, part = METRIC_KEYS[key]
            params[f"{phase}_{part}"] = float(value)
        params["hostname"] = hostname

        def work(cur):
            cur.execute(self._startup_update, params)
            row = cur.fetchone()
            if row is None:
                raise UnknownVm(hostname)
            return row["totalstartupdurationseconds"]

        return self._run(work)

    def calculate_total_startup_time(self, hostname: str) -> float | None:
        """Recompute the total from the stored phases (the same statement with no new values)."""
        return self.update_vm_metrics(hostname, {})

    # -- logs -------------------------------------------------------------------------

    def append_log_events(self, log_group: str, hostname: str, events: Sequence[LogEvent]) -> LogIngestResult:
        """Store a batch of CloudWatch events once each (keyed by event id), then refresh the
        VM's bounded Logs text from its newest events. The cost is the batch plus the tail,
        never the history. Events of a stream with no VM are stored with vm_known = false."""
        if not events:
            return LogIngestResult(0, 0, self.vm_exists(hostname))
        ids = [e.event_id for e in events]
        times = [e.timestamp_ms for e in events]
        messages = [e.message for e in events]

        def work(cur):
            # Locking the VM row serializes batches of one VM, so the refreshed tail always
            # includes every batch committed before it.
            cur.execute(self._q("SELECT hostname FROM {t} WHERE hostname = %s FOR UPDATE"), (hostname,))
            known = cur.fetchone() is not None
            cur.execute(
                sql.SQL(
                    "INSERT INTO {events} (event_id, hostname, log_group, event_time, message, vm_known) "
                    "SELECT e.id, %(host)s, %(group)s, to_timestamp(e.ts / 1000.0), e.msg, %(known)s "
                    "FROM unnest(%(ids)s::text[], %(times)s::bigint[], %(msgs)s::text[]) AS e(id, ts, msg) "
                    "ON CONFLICT (event_id) DO NOTHING"
                ).format(events=LOG_EVENTS_TABLE),
                {"host": hostname, "group": log_group, "known": known, "ids": ids, "times": times, "msgs": messages},
            )
            stored = cur.rowcount
            if known and stored:
                cur.execute(
                    sql.SQL(
                        "UPDATE {t} SET logs = right(("
                        "  SELECT string_agg(message, E'\\n' ORDER BY event_time, event_id) FROM ("
                        "    SELECT message, event_time, event_id FROM {events} WHERE hostname = %(host)s"
                        "    ORDER BY event_time DESC, event_id DESC LIMIT %(events_limit)s) AS tail"
                        "), %(chars)s), last_seen_at = now() WHERE hostname = %(host)s"
                    ).format(t=self.table, events=LOG_EVENTS_TABLE),
                    {"host": hostname, "events_limit": LOGS_TAIL_EVENTS, "chars": LOGS_TAIL_CHARS},
                )
            return LogIngestResult(len(events), stored, known)

        return self._run(work, atomic=True)

    def save_logs_by_hostname(self, hostname: str, logs: str) -> bool:
        """Replace the Logs text (the seed's operation; the log processor appends events)."""
        return bool(self._rowcount(self._q("UPDATE {t} SET logs = right(%s, %s) WHERE hostname = %s"), (logs, LOGS_TAIL_CHARS, hostname)))

    def get_vm_logs(self, hostname: str) -> str | None:
        """The VM's recent log text ('' when none yet); raises UnknownVm."""
        row = self._one(self._q("SELECT COALESCE(logs, '') AS logs FROM {t} WHERE hostname = %s"), (hostname,))
        if row is None:
            raise UnknownVm(hostname)
        return row["logs"]

    def count_log_events(self, hostname: str | None = None) -> int:
        if hostname is None:
            return self._one(sql.SQL("SELECT count(*) AS n FROM {}").format(LOG_EVENTS_TABLE))["n"]
        return self._one(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE hostname = %s").format(LOG_EVENTS_TABLE), (hostname,)
        )["n"]

    # -- operations -------------------------------------------------------------------

    def create_operation(self, kind: str, hostnames: Sequence[str]) -> uuid.UUID:
        operation_id = uuid.uuid4()
        self._rowcount(
            sql.SQL("INSERT INTO {} (operation_id, kind, requested, hostnames) VALUES (%s, %s, %s, %s)").format(OPERATIONS_TABLE),
            (str(operation_id), kind, len(hostnames), list(hostnames)),
        )
        return operation_id

    def get_operation(self, operation_id: uuid.UUID | str) -> dict | None:
        try:
            operation_id = uuid.UUID(str(operation_id))
        except ValueError:
            return None
        return self._one(
            sql.SQL(
                "SELECT operation_id::text, kind, status, requested, done, failed, hostnames, error, "
                "created_at, updated_at FROM {} WHERE operation_id = %s"
            ).format(OPERATIONS_TABLE),
            (str(operation_id),),
        )

    def record_operation_progress(
        self, operation_id: uuid.UUID | str, *, done: int = 0, failed: int = 0, error: str | None = None
    ) -> None:
        """Count finished items; the operation ends (succeeded, partial or failed) when every
        requested item is counted."""
        self._rowcount(
            sql.SQL(
                """
                UPDATE {} SET
                    done = done + %(done)s,
                    failed = failed + %(failed)s,
                    error = COALESCE(%(error)s, error),
                    status = CASE
                        WHEN done + %(done)s + failed + %(failed)s < requested THEN 'running'
                        WHEN failed + %(failed)s = 0 THEN 'succeeded'
                        WHEN done + %(done)s = 0 THEN 'failed'
                        ELSE 'partial' END,
                    updated_at = now()
                WHERE operation_id = %(id)s
                """
            ).format(OPERATIONS_TABLE),
            {"id": str(operation_id), "done": done, "failed": failed, "error": error},
        )

    # -- database sessions (operations and fault injection) -----------------------------

    def count_sessions(self, application_name_prefix: str) -> int:
        """Connections to this database whose application_name starts with the prefix."""
        return self._one(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND starts_with(application_name, %s)",
            (application_name_prefix,),
        )["n"]

    def terminate_sessions(self, application_name: str) -> int:
        """pg_terminate_backend every connection to this database with this application_name."""
        return self._one(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )["n"]

    # -- provisioning and auth -------------------------------------------------------

    def get_hostname_by_token_hash(self, token_hash: str) -> str | None:
        """The VM holding this token (by its hash; the unique index makes it one lookup)."""
        row = self._one(self._q("SELECT hostname FROM {t} WHERE token_hash = %s"), (token_hash,))
        return row["hostname"] if row else None

    def reserve_launch(self, environment: str, count: int, max_vms: int) -> tuple[uuid.UUID, list[str]]:
        """Create a launch operation for ``count`` new hostnames numbered after the highest one
        in use (VM rows, and launches still in progress). A transaction-scoped advisory lock
        makes concurrent launches take turns, so no two get the same names. Raises FleetFull
        when the fleet would exceed ``max_vms``."""
        prefix = f"lablink-vm-{environment}-"
        # environment matches [a-z0-9-], so the prefix holds no regular-expression syntax.
        pattern = "^" + prefix + "([0-9]+)$"

        def work(cur):
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('lablink-launch', 0))")
            cur.execute(
                sql.SQL(
                    "WITH taken AS (SELECT hostname FROM {t} UNION SELECT unnest(hostnames) FROM {ops} "
                    "WHERE kind = 'launch' AND status IN ('queued', 'running')) "
                    "SELECT count(*) AS n, COALESCE(max(substring(hostname FROM %(pattern)s)::int), 0) AS top FROM taken"
                ).format(t=self.table, ops=OPERATIONS_TABLE),
                {"pattern": pattern},
            )
            row = cur.fetchone()
            if row["n"] + count > max_vms:
                raise FleetFull(
                    f"Launching {count} more VMs would make {row['n'] + count}, above the maximum of {max_vms}."
                )
            hostnames = [f"{prefix}{row['top'] + i}" for i in range(1, count + 1)]
            operation_id = uuid.uuid4()
            cur.execute(
                sql.SQL("INSERT INTO {} (operation_id, kind, requested, hostnames) VALUES (%s, 'launch', %s, %s)").format(
                    OPERATIONS_TABLE
                ),
                (str(operation_id), count, hostnames),
            )
            return operation_id, hostnames

        return self._run(work, atomic=True)

    def get_instance_ids(self, hostnames: Iterable[str]) -> dict[str, str | None]:
        """hostname -> EC2 instance id (None while not launched) of the rows that exist."""
        rows = self._all(self._q("SELECT hostname, instance_id FROM {t} WHERE hostname = ANY(%s)"), (list(hostnames),))
        return {r["hostname"]: r["instance_id"] for r in rows}

    def set_token_hash(self, hostname: str, token_hash: str) -> bool:
        return bool(self._rowcount(self._q("UPDATE {t} SET token_hash = %s WHERE hostname = %s"), (token_hash, hostname)))

    def mark_vms_terminated(self, hostnames: Iterable[str]) -> int:
        return self._rowcount(
            self._q("UPDATE {t} SET status = 'terminated' WHERE hostname = ANY(%s)"), (list(hostnames),)
        )

    # -- audit ------------------------------------------------------------------------

    def get_audit_trail(self, hostname: str | None = None) -> list[dict]:
        where = sql.SQL("WHERE hostname = %s") if hostname else sql.SQL("")
        return self._all(
            sql.SQL(
                "SELECT audit_id, at, actor, action, hostname, old_status, new_status, old_email, new_email, "
                "assignment_changed, changed_columns FROM {} {} ORDER BY audit_id"
            ).format(AUDIT_TABLE, where),
            (hostname,) if hostname else None,
        )


# -- listener queries (asyncpg) -----------------------------------------------------------
# The listener runs on asyncpg, which takes $1-style placeholders and plain text: the same
# psycopg2.sql compositions, rendered offline.


@dataclass(frozen=True)
class ListenerQueries:
    vm: str  # $1 hostname -> hostname, crdcommand, pin, token_hash
    token_owner: str  # $1 token hash -> hostname
    assignments: str  # $1 text[] of hostnames -> hostname, crdcommand, pin of those that exist


def listener_queries(db: DbConfig) -> ListenerQueries:
    from lablink.sqltext import to_text

    table = sql.Identifier(db.table_name)

    def text(query: str) -> str:
        return to_text(sql.SQL(query).format(t=table))

    return ListenerQueries(
        vm=text("SELECT hostname, crdcommand, pin, token_hash FROM {t} WHERE hostname = $1"),
        token_owner=text("SELECT hostname FROM {t} WHERE token_hash = $1 LIMIT 1"),
        assignments=text("SELECT hostname, crdcommand, pin FROM {t} WHERE hostname = ANY($1::text[])"),
    )


def _check_status(status: object) -> str:
    try:
        return VmStatus(status).value
    except ValueError:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(VmStatus)}") from None
