"""What outlives the VMs (written by the database's own trigger, sql/0011_pool.sql): every
assignment, and every instance with its hours, so a workshop is reported and costed after
its fleet is gone.

Cost = instance hours x the hourly price of the instance's type; an instance whose type was
not recorded is priced as the configured machine type, and an unknown type costs nothing
(it shows as a null price, never as a guess)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from psycopg2 import sql

from lablink.db.connection import Connection, Row
from lablink.db.tables import VmTable

HISTORY = sql.Identifier("assignment_history")
LEDGER = sql.Identifier("instance_ledger")

# The hourly price of each ledger row, from the prices passed as one JSON parameter.
_PRICED_LEDGER = sql.SQL(
    "SELECT l.*, COALESCE(l.instance_type, %(default_type)s) AS priced_type, "
    "(%(prices)s::jsonb ->> COALESCE(l.instance_type, %(default_type)s))::float8 AS hourly_usd FROM {} l"
).format(LEDGER)


class History:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table

    @staticmethod
    def _pricing(now: datetime, default_type: str, prices: Mapping[str, float]) -> dict:
        return {"now": now, "default_type": default_type, "prices": json.dumps(dict(prices))}

    def list_assignments(self, now: datetime, default_type: str, prices: Mapping[str, float]) -> list[Row]:
        """Every assignment, oldest first, with its instance type and the cost of its instance
        while assigned (to ``now`` for one still open)."""
        query = sql.SQL(
            """
            WITH priced AS ({priced})
            SELECT h.hostname, h.email, h.assigned_at, h.released_at, h.release_reason,
                   h.provisioning_seconds, h.cloud_init_seconds, h.container_seconds, h.total_startup_seconds,
                   COALESCE(p.priced_type, %(default_type)s) AS instance_type,
                   round((EXTRACT(EPOCH FROM (COALESCE(h.released_at, %(now)s) - h.assigned_at)) / 3600
                          * p.hourly_usd)::numeric, 4)::float8 AS cost_usd
              FROM {h} h LEFT JOIN priced p ON p.instance_id = h.instance_id
             ORDER BY h.assigned_at, h.assignment_id
            """
        ).format(priced=_PRICED_LEDGER, h=HISTORY)
        return self._conn.all(query, self._pricing(now, default_type, prices))

    def cost_so_far(self, now: datetime, default_type: str, prices: Mapping[str, float]) -> float:
        """What every instance the deployment ever ran has cost up to ``now`` (USD)."""
        query = sql.SQL(
            "WITH priced AS ({priced}) SELECT COALESCE(round(sum(EXTRACT(EPOCH FROM "
            "(COALESCE(terminated_at, %(now)s) - launched_at)) / 3600 * hourly_usd)::numeric, 4), 0)::float8 AS usd FROM priced"
        ).format(priced=_PRICED_LEDGER)
        return float(self._conn.scalar(query, self._pricing(now, default_type, prices)))
