"""The tables and the typed rows that leave the data layer.

The VM row's columns are those of the schema (sql/) minus the hidden ones (the bulky logs,
the secret token hashes), in the schema's order; a test compares them with the live table."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, get_type_hints

from psycopg2 import sql

from lablink.config import DbConfig


class VmRow(TypedDict):
    hostname: str
    pin: str | None
    crdcommand: str | None
    useremail: str | None
    inuse: bool
    healthy: str | None
    status: str | None
    terraformapplystarttime: datetime | None
    terraformapplyendtime: datetime | None
    terraformapplydurationseconds: float | None
    cloudinitstarttime: datetime | None
    cloudinitendtime: datetime | None
    cloudinitdurationseconds: float | None
    containerstarttime: datetime | None
    containerendtime: datetime | None
    containerstartupdurationseconds: float | None
    totalstartupdurationseconds: float | None
    createdat: datetime | None
    instance_id: str | None
    assigned_at: datetime | None
    last_seen_at: datetime | None
    inuse_changed_at: datetime | None


class OperationRow(TypedDict):
    operation_id: str
    kind: str
    status: str
    requested: int
    done: int
    failed: int
    hostnames: list[str]
    error: str | None
    created_at: datetime
    updated_at: datetime


VM_COLUMNS: tuple[str, ...] = tuple(get_type_hints(VmRow))
HIDDEN_VM_COLUMNS = frozenset({"logs", "token_hash", "claim_token_hash"})

LOG_EVENTS = sql.Identifier("vm_log_events")
OPERATIONS = sql.Identifier("operations")
AUDIT = sql.Identifier("vm_audit")
ACCESS_SETTINGS = sql.Identifier("access_settings")

# Assignable: running and unassigned (the seed's rule, plus no email).
FREE_POOL = sql.SQL("crdcommand IS NULL AND useremail IS NULL AND status = 'running'")


class VmTable:
    """The configured VM table: its quoted name and the column list of a VmRow, composed once."""

    def __init__(self, db: DbConfig) -> None:
        self.name = db.table_name
        self.identifier = sql.Identifier(db.table_name)
        self.row_columns = sql.SQL(", ").join(sql.Identifier(c) for c in VM_COLUMNS)

    def query(self, text: str) -> sql.Composed:
        """``text`` with ``{t}`` as the VM table and ``{cols}`` as a VmRow's columns."""
        return sql.SQL(text).format(t=self.identifier, cols=self.row_columns)
