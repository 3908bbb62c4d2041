"""VM rows: created by the provisioning step, updated by the VMs' own reports, read by the
admin routes. Hostnames are validated where they enter (the API); here they are values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from psycopg2 import sql

from lablink.db.connection import Connection
from lablink.db.tables import OPERATIONS, VmRow, VmTable
from lablink.models import GpuHealth, VmStatus


def checked_status(status: VmStatus | str) -> str:
    try:
        return VmStatus(status).value
    except ValueError:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(VmStatus)}") from None


class Vms:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table

    def insert(
        self,
        hostname: str,
        *,
        status: VmStatus | str = VmStatus.INITIALIZING,
        instance_id: str | None = None,
        token_hash: str | None = None,
    ) -> bool:
        """Create a VM row; False when the hostname exists already (nothing is changed)."""
        return bool(
            self._conn.rowcount(
                self._table.query(
                    # createdat is a timestamp without zone: UTC by name, whatever the session's zone.
                    "INSERT INTO {t} (hostname, status, instance_id, token_hash, createdat) "
                    "VALUES (%s, %s, %s, %s, now() AT TIME ZONE 'UTC') ON CONFLICT (hostname) DO NOTHING"
                ),
                (hostname, checked_status(status), instance_id, token_hash),
            )
        )

    def insert_for_launch(self, hostname: str, operation_id: str, token_hash: str) -> bool:
        """Create the row of a VM its launch operation is about to start; False when the
        operation is no longer in flight (a "destroy all" cancelled it) or the row exists.
        The operation's row is share-locked, so a cancel waits for this insert to commit and
        the destroy that follows it sees the row: no row is created behind a destroy's back."""
        return bool(
            self._conn.rowcount(
                sql.SQL(
                    "INSERT INTO {t} (hostname, status, token_hash, createdat) "
                    "SELECT %(hostname)s, 'initializing', %(token_hash)s, now() AT TIME ZONE 'UTC' "
                    "WHERE EXISTS (SELECT 1 FROM {ops} WHERE operation_id = %(operation_id)s "
                    "AND status IN ('queued', 'running') FOR SHARE) ON CONFLICT (hostname) DO NOTHING"
                ).format(t=self._table.identifier, ops=OPERATIONS),
                {"hostname": hostname, "token_hash": token_hash, "operation_id": operation_id},
            )
        )

    def get(self, hostname: str) -> VmRow | None:
        row = self._conn.one(self._table.query("SELECT {cols} FROM {t} WHERE hostname = %s"), (hostname,))
        return cast(VmRow | None, row)

    def exists(self, hostname: str) -> bool:
        return self._conn.one(self._table.query("SELECT 1 AS found FROM {t} WHERE hostname = %s"), (hostname,)) is not None

    def list_all(self) -> list[VmRow]:
        """Every VM, oldest first."""
        return cast(list[VmRow], self._conn.all(self._table.query("SELECT {cols} FROM {t} ORDER BY createdat, hostname")))

    def list_hostnames(self) -> list[str]:
        return [r["hostname"] for r in self._conn.all(self._table.query("SELECT hostname FROM {t} ORDER BY hostname"))]

    def list_statuses(self) -> dict[str, str | None]:
        """hostname -> status of every VM."""
        rows = self._conn.all(self._table.query("SELECT hostname, status FROM {t} ORDER BY hostname"))
        return {r["hostname"]: r["status"] for r in rows}

    def count_by_status(self) -> dict[str, int]:
        rows = self._conn.all(self._table.query("SELECT COALESCE(status, 'unknown') AS status, count(*) AS n FROM {t} GROUP BY 1"))
        return {r["status"]: r["n"] for r in rows}

    def get_instance_ids(self, hostnames: Iterable[str]) -> dict[str, str | None]:
        """hostname -> EC2 instance id (None while not launched) of the rows that exist."""
        rows = self._conn.all(
            self._table.query("SELECT hostname, instance_id FROM {t} WHERE hostname = ANY(%s)"), (list(hostnames),)
        )
        return {r["hostname"]: r["instance_id"] for r in rows}

    def get_hostname_by_token_hash(self, token_hash: str) -> str | None:
        """The VM holding this token (by its hash; the unique index makes it one lookup)."""
        row = self._conn.one(self._table.query("SELECT hostname FROM {t} WHERE token_hash = %s"), (token_hash,))
        return row["hostname"] if row else None

    def set_status(self, hostname: str, status: VmStatus | str) -> bool:
        """Set a VM's status; False for an unknown VM. A VM that holds an assignment stays
        'assigned' when it reports 'running' again (after a restart, say)."""
        return bool(
            self._conn.rowcount(
                self._table.query(
                    "UPDATE {t} SET status = CASE "
                    "WHEN %(status)s = 'running' AND useremail IS NOT NULL THEN 'assigned' "
                    "ELSE %(status)s END, last_seen_at = now() WHERE hostname = %(hostname)s"
                ),
                {"status": checked_status(status), "hostname": hostname},
            )
        )

    def set_in_use(self, hostname: str, in_use: bool) -> bool:
        if not isinstance(in_use, bool):
            raise ValueError("in_use must be true or false")
        return self._update_one("UPDATE {t} SET inuse = %s, last_seen_at = now() WHERE hostname = %s", in_use, hostname)

    def set_health(self, hostname: str, healthy: GpuHealth | str) -> bool:
        try:
            health = GpuHealth(healthy)
        except ValueError:
            raise ValueError(f"unknown GPU health {healthy!r}; expected one of {', '.join(GpuHealth)}") from None
        return self._update_one("UPDATE {t} SET healthy = %s, last_seen_at = now() WHERE hostname = %s", health.value, hostname)

    def set_instance(self, hostname: str, instance_id: str | None, instance_type: str | None = None) -> bool:
        """Record the VM's instance; False when its row is gone or marked terminated (a destroy
        took it meanwhile: the caller must end the instance, which no destroy will find). The
        history trigger puts ``instance_type`` on the instance ledger (it reads
        lablink.instance_type, set for this one transaction: the statements travel as one
        query string)."""
        query = sql.SQL("SELECT set_config('lablink.instance_type', %s, true); ") + self._table.query(
            "UPDATE {t} SET instance_id = %s WHERE hostname = %s AND status IS DISTINCT FROM 'terminated'"
        )
        return bool(self._conn.rowcount(query, (instance_type or "", instance_id, hostname)))

    def set_token_hash(self, hostname: str, token_hash: str) -> bool:
        return self._update_one("UPDATE {t} SET token_hash = %s WHERE hostname = %s", token_hash, hostname)

    def set_terminated(self, hostnames: Iterable[str] | None) -> dict[str, str | None]:
        """Mark the VMs (every VM when ``hostnames`` is None) terminated; returns hostname ->
        instance id of the rows marked. Marking and reading are one statement, so an instance
        recorded concurrently is either returned here or refused by set_instance."""
        rows = self._conn.all(
            self._table.query(
                "UPDATE {t} SET status = 'terminated' WHERE %(every)s OR hostname = ANY(%(names)s) RETURNING hostname, instance_id"
            ),
            {"every": hostnames is None, "names": [] if hostnames is None else list(hostnames)},
        )
        return {r["hostname"]: r["instance_id"] for r in rows}

    def delete(self, hostnames: Iterable[str]) -> int:
        return self._conn.rowcount(self._table.query("DELETE FROM {t} WHERE hostname = ANY(%s)"), (list(hostnames),))

    def _update_one(self, statement: str, value: object, hostname: str) -> bool:
        """Run an UPDATE of one row by hostname; False when no row has it."""
        return bool(self._conn.rowcount(self._table.query(statement), (value, hostname)))
