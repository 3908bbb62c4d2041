"""Launch, destroy and reboot operations: what the admin asked for, and how far the step has got."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from psycopg2 import sql

from lablink.db.connection import Connection, Cursor, Row
from lablink.db.errors import FleetFull
from lablink.db.tables import OPERATIONS, OperationRow, VmTable
from lablink.models import vm_hostname

_INSERT = sql.SQL("INSERT INTO {} (operation_id, kind, requested, hostnames) VALUES (%s, %s, %s, %s)").format(
    OPERATIONS
)


class Operations:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table

    def create(self, kind: str, hostnames: Sequence[str]) -> uuid.UUID:
        operation_id = uuid.uuid4()
        self._conn.rowcount(_INSERT, (str(operation_id), kind, len(hostnames), list(hostnames)))
        return operation_id

    def get(self, operation_id: uuid.UUID | str) -> OperationRow | None:
        try:
            operation_id = uuid.UUID(str(operation_id))
        except ValueError:
            return None
        row = self._conn.one(
            sql.SQL(
                "SELECT operation_id::text, kind, status, requested, done, failed, hostnames, error, "
                "created_at, updated_at FROM {} WHERE operation_id = %s"
            ).format(OPERATIONS),
            (str(operation_id),),
        )
        return cast(OperationRow | None, row)

    def create_sole_destroy(self, hostname: str) -> uuid.UUID | None:
        """Create a destroy of this VM unless another destroy of it is queued or running (then
        None). A transaction-scoped advisory lock on the hostname makes two requests take turns,
        so two recycles at the same instant cannot both pass (each would launch a replacement).
        A run repeated after its commit was lost finds its own operation and answers it."""
        operation_id = uuid.uuid4()

        def work(cur: Cursor) -> uuid.UUID | None:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("lablink-destroy:" + hostname,))
            cur.execute(
                sql.SQL(
                    "SELECT 1 FROM {} WHERE kind = 'destroy' AND status IN ('queued', 'running') "
                    "AND %s = ANY(hostnames) AND operation_id <> %s"
                ).format(OPERATIONS),
                (hostname, str(operation_id)),
            )
            if cur.fetchone() is not None:
                return None
            cur.execute(
                _INSERT + sql.SQL(" ON CONFLICT (operation_id) DO NOTHING"),
                (str(operation_id), "destroy", 1, [hostname]),
            )
            return operation_id

        return self._conn.run(work, atomic=True)

    def list_failures(self, limit: int = 10) -> list[Row]:
        """The latest operations that failed in whole or in part, with their errors (an EC2
        capacity or quota refusal shows here), newest first."""
        return self._conn.all(
            sql.SQL(
                "SELECT updated_at AS at, operation_id::text, kind, status, error FROM {} "
                "WHERE status IN ('failed', 'partial') AND error IS NOT NULL ORDER BY updated_at DESC LIMIT %s"
            ).format(OPERATIONS),
            (limit,),
        )

    def mark_running(self, operation_id: uuid.UUID | str) -> str | None:
        """A step begins: a queued operation becomes running (and one in flight is stamped as
        alive); an ended one stays as it is. Returns its status now, None when it is gone."""
        return self._conn.scalar(
            sql.SQL(
                "UPDATE {} SET status = CASE WHEN status = 'queued' THEN 'running' ELSE status END, "
                "updated_at = CASE WHEN status IN ('queued', 'running') THEN now() ELSE updated_at END "
                "WHERE operation_id = %s RETURNING status"
            ).format(OPERATIONS),
            (str(operation_id),),
        )

    def record_progress(
        self, operation_id: uuid.UUID | str, *, done: int = 0, failed: int = 0, error: str | None = None
    ) -> None:
        """Count finished items; the operation ends (succeeded, partial or failed) when every
        requested item is counted. A cancelled or failed operation stays so, with its error (a
        late run of a step the reconciler declared dead does not bring it back)."""
        self._conn.rowcount(
            sql.SQL(
                """
                UPDATE {} SET
                    done = done + %(done)s,
                    failed = failed + %(failed)s,
                    error = CASE WHEN status IN ('cancelled', 'failed') THEN error ELSE COALESCE(%(error)s, error) END,
                    status = CASE
                        WHEN status IN ('cancelled', 'failed') THEN status
                        WHEN done + %(done)s + failed + %(failed)s < requested THEN 'running'
                        WHEN failed + %(failed)s = 0 THEN 'succeeded'
                        WHEN done + %(done)s = 0 THEN 'failed'
                        ELSE 'partial' END,
                    updated_at = now()
                WHERE operation_id = %(id)s
                """
            ).format(OPERATIONS),
            {"id": str(operation_id), "done": done, "failed": failed, "error": error},
        )

    def cancel_launches(self, destroy_operation_id: uuid.UUID | str) -> list[str]:
        """Cancel every launch still in flight (a "destroy all" is under way); returns their ids.
        Their steps start no further instance (see Vms.insert_for_launch)."""
        rows = self._conn.all(
            sql.SQL(
                "UPDATE {} SET status = 'cancelled', error = %s, updated_at = now() "
                "WHERE kind = 'launch' AND status IN ('queued', 'running') RETURNING operation_id::text AS operation_id"
            ).format(OPERATIONS),
            (f"cancelled by the destroy-all operation {destroy_operation_id}",),
        )
        return [r["operation_id"] for r in rows]

    def list_launches_in_flight(self) -> set[str]:
        """The ids of the launch operations queued or running (not cancelled)."""
        rows = self._conn.all(
            sql.SQL(
                "SELECT operation_id::text AS operation_id FROM {} WHERE kind = 'launch' AND status IN ('queued', 'running')"
            ).format(OPERATIONS)
        )
        return {r["operation_id"] for r in rows}

    def abandon_stalled_operations(self, stalled_before: datetime, reason: str) -> list[Row]:
        """Mark failed the launches and destroys that made no progress since ``stalled_before``
        (a launch's hostnames are then free to be reserved again). Returns their id, kind
        and hostnames."""
        return self._conn.all(
            sql.SQL(
                "UPDATE {} SET status = 'failed', error = %s, updated_at = now() "
                "WHERE status IN ('queued', 'running') AND updated_at < %s "
                "RETURNING operation_id::text, kind, hostnames"
            ).format(OPERATIONS),
            (reason, stalled_before),
        )

    def reserve_launch(self, environment: str, count: int, max_vms: int) -> tuple[uuid.UUID, list[str]]:
        """Create a launch operation for ``count`` new hostnames numbered after the highest one
        in use (VM rows, and launches still in progress). A transaction-scoped advisory lock
        makes concurrent launches take turns, so no two get the same names. Raises FleetFull
        when the fleet would exceed ``max_vms``."""
        # environment matches [a-z0-9-], so the hostname prefix holds no regular-expression syntax.
        pattern = "^" + vm_hostname(environment, 0).removesuffix("0") + "([0-9]+)$"

        def work(cur: Cursor) -> tuple[uuid.UUID, list[str]]:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('lablink-launch', 0))")
            cur.execute(
                sql.SQL(
                    "WITH taken AS (SELECT hostname FROM {t} UNION SELECT unnest(hostnames) FROM {ops} "
                    "WHERE kind = 'launch' AND status IN ('queued', 'running')) "
                    "SELECT count(*) AS n, COALESCE(max(substring(hostname FROM %(pattern)s)::int), 0) AS top FROM taken"
                ).format(t=self._table.identifier, ops=OPERATIONS),
                {"pattern": pattern},
            )
            row = cast(Row, cur.fetchone())  # an aggregate: always one row
            if row["n"] + count > max_vms:
                raise FleetFull(
                    f"Launching {count} more VMs would make {row['n'] + count}, above the maximum of {max_vms}."
                )
            hostnames = [vm_hostname(environment, row["top"] + i) for i in range(1, count + 1)]
            operation_id = uuid.uuid4()
            cur.execute(_INSERT, (str(operation_id), "launch", count, hostnames))
            return operation_id, hostnames

        return self._conn.run(work, atomic=True)
