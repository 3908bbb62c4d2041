"""VM log events (from the CloudWatch Logs subscription) and each VM's bounded log text."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg2 import sql

from lablink.db.connection import Connection, Cursor
from lablink.db.errors import UnknownVm
from lablink.db.tables import LOG_EVENTS, VmTable
from lablink.models import LogEvent, LogIngestResult

# The Logs column is a bounded view of the newest events (the events table holds them all).
LOGS_TAIL_EVENTS = 500
LOGS_TAIL_CHARS = 64 * 1024


class VmLogs:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table
        self._lock_vm = table.query("SELECT hostname FROM {t} WHERE hostname = %s FOR UPDATE")
        self._insert_events = sql.SQL(
            "INSERT INTO {events} (event_id, hostname, log_group, event_time, message, vm_known) "
            "SELECT e.id, %(host)s, %(group)s, to_timestamp(e.ts / 1000.0), e.msg, %(known)s "
            "FROM unnest(%(ids)s::text[], %(times)s::bigint[], %(msgs)s::text[]) AS e(id, ts, msg) "
            "ON CONFLICT (event_id) DO NOTHING"
        ).format(events=LOG_EVENTS)
        self._refresh_tail = sql.SQL(
            "UPDATE {t} SET logs = right(("
            "  SELECT string_agg(message, E'\\n' ORDER BY event_time, event_id) FROM ("
            "    SELECT message, event_time, event_id FROM {events} WHERE hostname = %(host)s"
            "    ORDER BY event_time DESC, event_id DESC LIMIT %(events_limit)s) AS tail"
            "), %(chars)s), last_seen_at = now() WHERE hostname = %(host)s"
        ).format(t=table.identifier, events=LOG_EVENTS)

    def append(self, log_group: str, hostname: str, events: Sequence[LogEvent]) -> LogIngestResult:
        """Store a batch of CloudWatch events once each (keyed by event id), then refresh the
        VM's bounded Logs text from its newest events. The cost is the batch plus the tail,
        never the history. Events of a stream with no VM are stored with vm_known = false."""
        if not events:
            known = self._conn.one(self._table.query("SELECT 1 AS found FROM {t} WHERE hostname = %s"), (hostname,))
            return LogIngestResult(0, 0, known is not None)
        params = {
            "host": hostname,
            "group": log_group,
            "ids": [e.event_id for e in events],
            "times": [e.timestamp_ms for e in events],
            "msgs": [e.message for e in events],
        }

        def work(cur: Cursor) -> LogIngestResult:
            # Locking the VM row serializes batches of one VM, so the refreshed tail always
            # includes every batch committed before it.
            cur.execute(self._lock_vm, (hostname,))
            known = cur.fetchone() is not None
            cur.execute(self._insert_events, {**params, "known": known})
            stored = cur.rowcount
            if known and stored:
                cur.execute(self._refresh_tail, {"host": hostname, "events_limit": LOGS_TAIL_EVENTS, "chars": LOGS_TAIL_CHARS})
            return LogIngestResult(len(events), stored, known)

        return self._conn.run(work, atomic=True)

    def get_text(self, hostname: str) -> str:
        """The VM's recent log text ('' when none yet); raises UnknownVm."""
        row = self._conn.one(self._table.query("SELECT COALESCE(logs, '') AS logs FROM {t} WHERE hostname = %s"), (hostname,))
        if row is None:
            raise UnknownVm(hostname)
        return row["logs"]
