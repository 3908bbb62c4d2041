"""The pool autopilot's data: its policy, its action log, the one-query view of the VMs the
reconciler decides from, and its exclusive run (sql/0011_pool.sql)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from psycopg2 import sql

from lablink.db.connection import Connection, Cursor, Row
from lablink.db.tables import FREE_POOL, OPERATIONS, VmTable

T = TypeVar("T")

POLICY = sql.Identifier("pool_policy")
STATE = sql.Identifier("pool_state")
ACTIONS = sql.Identifier("pool_actions")
POLICY_FIELDS = (
    "min_free",
    "max_vms",
    "idle_timeout_s",
    "max_session_s",
    "unhealthy_after_s",
    "opens_at",
    "closes_at",
    "prewarm_s",
    "paused",
)


@dataclass(frozen=True)
class PoolAction:
    at: datetime
    action: str
    hostname: str | None
    reason: str
    operation_id: str | None = None


class Pool:
    def __init__(self, connection: Connection, table: VmTable, lock_connection: Callable[[], Connection]) -> None:
        self._conn = connection
        self._table = table
        self._lock_connection = lock_connection
        columns = sql.SQL(", ").join(map(sql.Identifier, POLICY_FIELDS))
        self._get_policy = sql.SQL("SELECT {c} FROM {p}").format(c=columns, p=POLICY)
        self._set_policy = sql.SQL(
            "INSERT INTO {p} ({c}) VALUES ({v}) ON CONFLICT (singleton) DO UPDATE SET ({c}, updated_at) = ({x}, now())"
        ).format(
            p=POLICY,
            c=columns,
            v=sql.SQL(", ").join(map(sql.Placeholder, POLICY_FIELDS)),
            x=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(f)) for f in POLICY_FIELDS),
        )
        # Every VM with what the reconciler decides from, in one statement: free or not, when its
        # idle time started, whether a destroy is already under way for it, and its reboots (the
        # pool's log since the row was created: a hostname used again starts afresh).
        self._list_vms = sql.SQL(
            """
            SELECT vm.hostname, vm.status, vm.instance_id, vm.healthy, vm.inuse,
                   vm.useremail IS NOT NULL AS assigned, ({free}) AS free,
                   vm.assigned_at, GREATEST(vm.assigned_at, vm.inuse_changed_at) AS idle_since,
                   COALESCE(vm.last_seen_at, vm.createdat AT TIME ZONE 'UTC') AS last_seen_at,
                   vm.createdat AT TIME ZONE 'UTC' AS created_at,
                   EXISTS (SELECT 1 FROM {ops} op WHERE op.kind = 'destroy' AND op.status IN ('queued', 'running')
                           AND vm.hostname = ANY(op.hostnames)) AS destroying,
                   reboots.n AS reboots, reboots.last AS last_reboot_at
              FROM {t} vm
              CROSS JOIN LATERAL (
                  SELECT count(*) AS n, max(a.at) AS last FROM {actions} a
                   WHERE a.action = 'reboot' AND a.hostname = vm.hostname AND a.at >= vm.createdat AT TIME ZONE 'UTC'
              ) AS reboots
             ORDER BY vm.createdat, vm.hostname
            """
        ).format(free=FREE_POOL, ops=OPERATIONS, t=table.identifier, actions=ACTIONS)

    def get_policy(self) -> dict[str, Any] | None:
        """The stored policy; None while none was ever stored (the configuration's is in force)."""
        return self._conn.one(self._get_policy)

    def set_policy(self, policy: dict[str, Any]) -> None:
        """Store the whole policy (every field of POLICY_FIELDS)."""
        self._conn.rowcount(self._set_policy, {field: policy[field] for field in POLICY_FIELDS})

    def list_vms(self) -> list[Row]:
        return self._conn.all(self._list_vms)

    def list_launching_hostnames(self) -> list[str]:
        """Hostnames reserved by launches still queued or running (their rows may not exist yet)."""
        rows = self._conn.all(
            sql.SQL(
                "SELECT DISTINCT unnest(hostnames) AS hostname FROM {} WHERE kind = 'launch' AND status IN ('queued', 'running')"
            ).format(OPERATIONS)
        )
        return [r["hostname"] for r in rows]

    def release(self, hostnames: Iterable[str], reason: str) -> int:
        """Take the researchers off these VMs (their emails are free again); the history keeps
        each assignment with ``reason`` (the trigger reads lablink.release_reason, set for
        this one transaction: the two statements travel as one query string). The command
        stays on the row, so the VM is never handed out again before it is destroyed."""
        query = sql.SQL("SELECT set_config('lablink.release_reason', %s, true); ") + self._table.query(
            "UPDATE {t} SET useremail = NULL WHERE hostname = ANY(%s) AND useremail IS NOT NULL"
        )
        return self._conn.rowcount(query, (reason, list(hostnames)))

    def append_actions(self, actions: Sequence[PoolAction]) -> None:
        """Record the actions of one reconcile, and that it ran (at the time of the last one)."""

        def work(cur: Cursor) -> None:
            if actions:
                rows = [(a.at, a.action, a.hostname, a.reason, a.operation_id) for a in actions]
                values = sql.SQL(", ").join(sql.Literal(row) for row in rows)
                cur.execute(
                    sql.SQL("INSERT INTO {} (at, action, hostname, reason, operation_id) VALUES ").format(ACTIONS)
                    + values
                )

        self._conn.run(work)

    def record_reconcile(self, at: datetime) -> None:
        self._conn.rowcount(sql.SQL("UPDATE {} SET last_reconcile_at = %s").format(STATE), (at,))

    def get_last_reconcile_at(self) -> datetime | None:
        return cast(datetime | None, self._conn.scalar(sql.SQL("SELECT last_reconcile_at FROM {}").format(STATE)))

    def list_latest_actions(self, limit: int = 100) -> list[Row]:
        return self._conn.all(
            sql.SQL(
                "SELECT at, action, hostname, reason, operation_id::text FROM {} ORDER BY at DESC, action_id DESC LIMIT %s"
            ).format(ACTIONS),
            (limit,),
        )

    def run_exclusive(self, work: Callable[[], T]) -> tuple[bool, T | None]:
        """Run ``work`` unless another process is running it: (False, None) at once when the
        pool's transaction advisory lock is taken. The lock is held by a transaction on a
        connection of its own (``work`` runs its statements on the usual one), so it ends
        with that transaction, or with the connection should the process die; through RDS
        Proxy that connection stays pinned for the run (seconds)."""
        lock = self._lock_connection()

        def locked(cur: Cursor) -> tuple[bool, T | None]:
            cur.execute("SELECT pg_try_advisory_xact_lock(hashtextextended('lablink-pool', 0)) AS got")
            if not cast(Row, cur.fetchone())["got"]:
                return False, None
            return True, work()

        try:
            return lock.run(locked, atomic=True)
        finally:
            lock.close()
