"""Schema migrations: the ordered files of sql/, rendered for a configuration and applied
once each, in order, under an advisory lock.

The same runner serves tests, the local stack, the CLI and the deploy-time custom resource.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from lablink import environment
from lablink.config import DbConfig
from lablink.db.sqltext import to_text

logger = logging.getLogger(__name__)

# "LABLINK" in ASCII: the advisory-lock key every runner takes before touching the schema.
MIGRATION_LOCK_KEY = 0x4C41424C494E4B
MIGRATION_TABLE = "lablink_schema_migrations"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def render(self, db: DbConfig) -> sql.Composed:
        return sql.SQL(self.template).format(**placeholders(db))


def placeholders(db: DbConfig) -> dict[str, sql.Composable]:
    """The names a migration may use: the configured table and channel, and index names
    derived from the table name (kept within PostgreSQL's 63-byte identifier limit)."""
    table = db.table_name

    def derived(suffix: str) -> sql.Identifier:
        return sql.Identifier(f"{table[: 63 - len(suffix)]}{suffix}")

    return {
        "vm_table": sql.Identifier(table),
        "channel": sql.Literal(db.message_channel),
        "vm_email_index": derived("_useremail_unique"),
        "vm_free_index": derived("_free_pool"),
        "vm_instance_index": derived("_instance_unique"),
        "vm_token_index": derived("_token_unique"),
        "app_role": sql.Identifier(db.app_role),
        "app_role_name": sql.Literal(db.app_role),
    }


def sql_dir() -> Path:
    """sql/ of the source tree, or the copy bundled beside this package in a Lambda layer."""
    if os.environ.get(environment.SQL_DIR):
        return Path(os.environ[environment.SQL_DIR])
    bundled = Path(__file__).with_name("sql")
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[4] / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(match[1], match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version number in {directory}")
    if not migrations:
        raise ValueError(f"no migrations found in {directory}")
    return migrations


_CREATE_BOOKKEEPING = sql.SQL(
    """CREATE TABLE IF NOT EXISTS {table} (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
).format(table=sql.Identifier(MIGRATION_TABLE))

_RECORD = sql.SQL("INSERT INTO {table} (version, name, checksum) VALUES ({v}, {n}, {c})")


def _record(migration: Migration) -> sql.Composed:
    return _RECORD.format(
        table=sql.Identifier(MIGRATION_TABLE),
        v=sql.Literal(migration.version),
        n=sql.Literal(migration.name),
        c=sql.Literal(migration.checksum),
    )


class MigrationError(RuntimeError):
    pass


def migrate(dsn: str, db: DbConfig, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the pending migrations; returns the versions applied (empty when up to date).

    Each migration runs in its own transaction with its bookkeeping row, so a failure leaves
    the schema at the last good version. The advisory lock makes concurrent runners (two
    deploys at once) take turns: the second finds nothing left to do.
    """
    migrations = migrations if migrations is not None else load_migrations()
    applied_now: list[str] = []
    conn = psycopg2.connect(dsn, application_name="lablink-migrate")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                cur.execute(_CREATE_BOOKKEEPING)
                cur.execute(
                    sql.SQL("SELECT version, checksum FROM {}").format(sql.Identifier(MIGRATION_TABLE))
                )
                done = dict(cur.fetchall())
                for migration in migrations:
                    if migration.version in done:
                        if done[migration.version] != migration.checksum:
                            raise MigrationError(
                                f"migration {migration.version}_{migration.name} was changed after "
                                "it was applied; add a new migration instead"
                            )
                        continue
                    conn.autocommit = False
                    try:
                        cur.execute(migration.render(db))
                        cur.execute(_record(migration))
                        conn.commit()
                    except Exception:
                        conn.rollback()
                        raise
                    finally:
                        conn.autocommit = True
                    logger.info("applied migration %s_%s", migration.version, migration.name)
                    applied_now.append(migration.version)
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        conn.close()
    return applied_now


def generate_init_sql(db: DbConfig, migrations: list[Migration] | None = None) -> str:
    """The whole schema as one psql script, bookkeeping included, so that `lablink migrate`
    run later against the same database finds nothing to do."""
    migrations = migrations if migrations is not None else load_migrations()
    parts = ["-- LabLink schema, generated by `lablink generate-init-sql`.", "BEGIN;", to_text(_CREATE_BOOKKEEPING) + ";"]
    for migration in migrations:
        parts.append(f"\n-- migration {migration.version}_{migration.name}")
        parts.append(to_text(migration.render(db)))
        parts.append(to_text(_record(migration)) + ";")
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"
