"""Test-only reads and writes of the database: what tests and benchmarks inspect or arrange,
which no function needs (so the layer does not ship it). Each takes the product's Database
and runs on its connection."""

from __future__ import annotations

from psycopg2 import sql

from lablink.db.database import Database
from lablink.db.rate_limits import RATE_LIMITS
from lablink.db.tables import AUDIT, FREE_POOL, LOG_EVENTS
from lablink.db.vm_logs import LOGS_TAIL_CHARS
from lablink.tokens import hash_token, log_stream_name, mint_token


def row_count(db: Database) -> int:
    return db.connection.scalar(db.table.query("SELECT count(*) AS n FROM {t}"))


def token_hash(db: Database, hostname: str) -> str | None:
    row = db.connection.one(db.table.query("SELECT token_hash FROM {t} WHERE hostname = %s"), (hostname,))
    return row["token_hash"] if row else None


def assignment_row(db: Database, hostname: str) -> dict | None:
    """What a waiting VM is told: hostname, crdcommand, pin (crdcommand None while unassigned)."""
    return db.connection.one(db.table.query("SELECT hostname, crdcommand, pin FROM {t} WHERE hostname = %s"), (hostname,))


def vm_of_email(db: Database, email: str) -> dict | None:
    """The VM assigned to ``email`` (hostname, pin, crdcommand), or None."""
    return db.connection.one(db.table.query("SELECT hostname, pin, crdcommand FROM {t} WHERE useremail = %s"), (email,))


def free_hostnames(db: Database) -> list[str]:
    rows = db.connection.all(
        sql.SQL("SELECT hostname FROM {t} WHERE {free} ORDER BY createdat, hostname").format(t=db.table.identifier, free=FREE_POOL)
    )
    return [r["hostname"] for r in rows]


def log_event_count(db: Database, hostname: str | None = None) -> int:
    if hostname is None:
        return db.connection.scalar(sql.SQL("SELECT count(*) AS n FROM {}").format(LOG_EVENTS))
    return db.connection.scalar(sql.SQL("SELECT count(*) AS n FROM {} WHERE hostname = %s").format(LOG_EVENTS), (hostname,))


def launched_vm(db: Database, hostname: str, **columns) -> str:
    """A VM row with its token, as the provisioning step leaves it; returns the VM's log stream."""
    token = mint_token()
    db.vms.insert(hostname, token_hash=hash_token(token), **columns)
    return log_stream_name(hostname, token)


def age_log_events(db: Database, hostname: str, days: int) -> int:
    """Make the VM's stored events look ingested ``days`` ago (pruning by age reads ingested_at)."""
    return db.connection.rowcount(
        sql.SQL("UPDATE {} SET ingested_at = now() - make_interval(days => %s) WHERE hostname = %s").format(LOG_EVENTS), (days, hostname)
    )


def replace_logs(db: Database, hostname: str, logs: str) -> bool:
    """Replace the Logs text (the seed's operation; the log processor appends events)."""
    return bool(
        db.connection.rowcount(db.table.query("UPDATE {t} SET logs = right(%s, %s) WHERE hostname = %s"), (logs, LOGS_TAIL_CHARS, hostname))
    )


def recompute_total(db: Database, hostname: str) -> float | None:
    """Recompute the total startup time from the stored phases."""
    return db.startup.record(hostname, {})


def audit_trail(db: Database, hostname: str | None = None) -> list[dict]:
    where = sql.SQL("WHERE hostname = %s") if hostname else sql.SQL("")
    return db.connection.all(
        sql.SQL(
            "SELECT audit_id, at, actor, action, hostname, old_status, new_status, old_email, new_email, "
            "assignment_changed, changed_columns FROM {} {} ORDER BY audit_id"
        ).format(AUDIT, where),
        (hostname,) if hostname else None,
    )


def delete_all_vms(db: Database) -> int:
    return db.connection.rowcount(db.table.query("DELETE FROM {t}"))


def claim_token_hash(db: Database, hostname: str) -> str | None:
    row = db.connection.one(db.table.query("SELECT claim_token_hash FROM {t} WHERE hostname = %s"), (hostname,))
    return row["claim_token_hash"] if row else None


def rate_limit_window_count(db: Database) -> int:
    return db.connection.scalar(sql.SQL("SELECT count(*) AS n FROM {}").format(RATE_LIMITS))


def forget_rate_limits(db: Database) -> int:
    """Start every rate-limit window afresh (a benchmark's runs are separate rooms)."""
    return db.connection.rowcount(sql.SQL("DELETE FROM {}").format(RATE_LIMITS))


def session_count(db: Database, application_name_prefix: str) -> int:
    """Connections to this database whose application_name starts with the prefix."""
    return db.connection.scalar(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND starts_with(application_name, %s)",
        (application_name_prefix,),
    )


def terminate_sessions(db: Database, application_name: str) -> int:
    """pg_terminate_backend every connection to this database with this application_name."""
    return db.connection.scalar(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    )


def column_names(db: Database) -> list[str]:
    """The VM table's columns, in the schema's order."""
    rows = db.connection.all(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (db.table.name,),
    )
    return [row["column_name"] for row in rows]


def ledger_types(db: Database) -> dict[str, str | None]:
    """hostname -> instance type of each instance on the ledger (sql/0011_pool.sql)."""
    rows = db.connection.all("SELECT hostname, instance_type FROM instance_ledger ORDER BY launched_at")
    return {r["hostname"]: r["instance_type"] for r in rows}
