"""VM log events (from the CloudWatch Logs subscription), each VM's bounded log text, its
ingest window and the bounds of the store (lablink.config.LogsConfig)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from psycopg2 import sql

from lablink.config import LogsConfig
from lablink.db.connection import Connection, Cursor, Row
from lablink.db.errors import UnknownVm
from lablink.db.tables import LOG_EVENTS, VmTable
from lablink.models import LogEvent, LogIngestResult, LogOverflow
from lablink.tokens import log_stream_hostname, log_stream_matches

# The Logs column is a bounded view of the newest events (the events table holds the rest).
LOGS_TAIL_EVENTS = 500
LOGS_TAIL_CHARS = 64 * 1024
# Pruning by age deletes at most this many events per batch, so a batch costs the same
# however much history waits to expire (the next batches take the rest).
AGE_PRUNE_PER_BATCH = 2_000

_INGEST = sql.Identifier("vm_log_ingest")


class VmLogs:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table
        self._token_hash = table.query("SELECT token_hash FROM {t} WHERE hostname = %s")
        self._lock_vm = table.query("SELECT token_hash FROM {t} WHERE hostname = %s FOR UPDATE")
        self._insert_events = sql.SQL(
            "INSERT INTO {events} (event_id, hostname, log_group, event_time, message, vm_known) "
            "SELECT e.id, %(host)s, %(group)s, to_timestamp(e.ts / 1000.0), e.msg, %(known)s "
            "FROM unnest(%(ids)s::text[], %(times)s::bigint[], %(msgs)s::text[]) AS e(id, ts, msg) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING octet_length(message) AS size"
        ).format(events=LOG_EVENTS)
        # A window older than window_seconds starts again from nothing.
        self._open_window = sql.SQL(
            "INSERT INTO {ingest} AS w (hostname) VALUES (%(host)s) ON CONFLICT (hostname) DO UPDATE SET"
            " window_start = CASE WHEN w.window_start <= now() - make_interval(secs => %(window)s) THEN now() ELSE w.window_start END,"
            " window_events = CASE WHEN w.window_start <= now() - make_interval(secs => %(window)s) THEN 0 ELSE w.window_events END,"
            " window_bytes = CASE WHEN w.window_start <= now() - make_interval(secs => %(window)s) THEN 0 ELSE w.window_bytes END"
            " RETURNING window_events, window_bytes"
        ).format(ingest=_INGEST)
        self._count_window = sql.SQL(
            "UPDATE {ingest} SET window_events = window_events + %(events)s, window_bytes = window_bytes + %(bytes)s,"
            " dropped_events = dropped_events + %(dropped)s, dropped_bytes = dropped_bytes + %(dropped_bytes)s"
            " WHERE hostname = %(host)s"
        ).format(ingest=_INGEST)
        # Everything of this VM older than its keep-th newest event (one index range).
        self._prune_vm = sql.SQL(
            "DELETE FROM {events} WHERE hostname = %(host)s AND vm_known AND (event_time, event_id) < ("
            "  SELECT event_time, event_id FROM {events} WHERE hostname = %(host)s AND vm_known"
            "  ORDER BY event_time DESC, event_id DESC OFFSET %(keep)s - 1 LIMIT 1)"
        ).format(events=LOG_EVENTS)
        self._prune_unknown = sql.SQL(
            "DELETE FROM {events} WHERE NOT vm_known AND (ingested_at, event_id) < ("
            "  SELECT ingested_at, event_id FROM {events} WHERE NOT vm_known"
            "  ORDER BY ingested_at DESC, event_id DESC OFFSET %(keep)s - 1 LIMIT 1)"
        ).format(events=LOG_EVENTS)
        self._prune_old = sql.SQL(
            "DELETE FROM {events} WHERE event_id IN (SELECT event_id FROM {events}"
            " WHERE ingested_at < now() - make_interval(days => %(days)s) LIMIT %(limit)s)"
        ).format(events=LOG_EVENTS)
        self._refresh_tail = sql.SQL(
            "UPDATE {t} SET logs = right(("
            "  SELECT string_agg(message, E'\\n' ORDER BY event_time, event_id) FROM ("
            "    SELECT message, event_time, event_id FROM {events} WHERE hostname = %(host)s AND vm_known"
            "    ORDER BY event_time DESC, event_id DESC LIMIT %(events_limit)s) AS tail"
            "), %(chars)s), last_seen_at = now() WHERE hostname = %(host)s"
        ).format(t=table.identifier, events=LOG_EVENTS)

    def append(
        self, log_group: str, log_stream: str, events: Sequence[LogEvent], limits: LogsConfig
    ) -> LogIngestResult:
        """Store a batch of CloudWatch events once each (keyed by event id), each cut to
        max_message_chars. When the stream is its VM's own (lablink.tokens.log_stream_matches):
        up to the VM's ingest window, the overflow counted; prune by count and age; refresh
        the VM's bounded Logs text. The cost is the batch plus bounded pruning, never the
        history. Events of a stream that is no VM's are stored aside (vm_known = false, under
        the stream's name), the newest keep_unknown_events of them kept."""
        hostname = log_stream_hostname(log_stream)
        cut = [LogEvent(e.event_id, e.timestamp_ms, e.message[: limits.max_message_chars]) for e in events]

        def owns_stream(cur: Cursor, query: sql.Composed) -> bool:
            cur.execute(query, (hostname,))
            row = cast(Row | None, cur.fetchone())
            return row is not None and log_stream_matches(log_stream, row["token_hash"])

        def work(cur: Cursor) -> LogIngestResult:
            # Locking the VM row serializes batches of one VM, so its window counts every
            # batch and the refreshed tail includes every batch committed before it. Only
            # the VM's own stream locks it (checked again under the lock): forged batches
            # naming a VM do not hold up its claim.
            known = owns_stream(cur, self._token_hash) and owns_stream(cur, self._lock_vm)
            if not cut:
                return LogIngestResult(0, 0, known)
            if known:
                result = self._store_within_window(cur, hostname, log_group, cut, limits)
            else:
                stored, _ = self._insert(cur, log_stream, log_group, cut, known=False)
                cur.execute(self._prune_unknown, {"keep": limits.keep_unknown_events})
                result = LogIngestResult(len(cut), stored, False)
            cur.execute(self._prune_old, {"days": limits.max_age_days, "limit": AGE_PRUNE_PER_BATCH})
            return result

        return self._conn.run(work, atomic=True)

    def _store_within_window(
        self, cur: Cursor, hostname: str, log_group: str, events: Sequence[LogEvent], limits: LogsConfig
    ) -> LogIngestResult:
        cur.execute(self._open_window, {"host": hostname, "window": limits.window_seconds})
        window = cast(Row, cur.fetchone())  # the upsert always returns its row
        room_events = max(limits.max_events_per_window - window["window_events"], 0)
        room_bytes = limits.max_bytes_per_window - window["window_bytes"]
        admitted: list[LogEvent] = []
        for event in events[:room_events]:
            room_bytes -= len(event.message.encode())
            if room_bytes < 0:
                break
            admitted.append(event)
        overflow = events[len(admitted) :]
        stored, stored_bytes = self._insert(cur, hostname, log_group, admitted, known=True)
        cur.execute(
            self._count_window,
            {
                "host": hostname,
                "events": stored,
                "bytes": stored_bytes,
                "dropped": len(overflow),
                "dropped_bytes": sum(len(e.message.encode()) for e in overflow),
            },
        )
        if stored:
            cur.execute(self._prune_vm, {"host": hostname, "keep": limits.keep_events_per_vm})
            cur.execute(
                self._refresh_tail, {"host": hostname, "events_limit": LOGS_TAIL_EVENTS, "chars": LOGS_TAIL_CHARS}
            )
        return LogIngestResult(len(events), stored, True, dropped=len(overflow))

    def _insert(
        self, cur: Cursor, hostname: str, log_group: str, events: Sequence[LogEvent], *, known: bool
    ) -> tuple[int, int]:
        """(events stored, their bytes): a redelivered event is stored once only."""
        if not events:
            return 0, 0
        cur.execute(
            self._insert_events,
            {
                "host": hostname,
                "group": log_group,
                "known": known,
                "ids": [e.event_id for e in events],
                "times": [e.timestamp_ms for e in events],
                "msgs": [e.message for e in events],
            },
        )
        sizes = [row["size"] for row in cast(list[Row], cur.fetchall())]
        return len(sizes), sum(sizes)

    def get_text(self, hostname: str) -> str:
        """The VM's recent log text ('' when none yet); raises UnknownVm."""
        row = self._conn.one(
            self._table.query("SELECT COALESCE(logs, '') AS logs FROM {t} WHERE hostname = %s"), (hostname,)
        )
        if row is None:
            raise UnknownVm(hostname)
        return row["logs"]

    def list_recent(self, hostname: str, limit: int = LOGS_TAIL_EVENTS) -> list[Row]:
        """The VM's newest ``limit`` events (``event_time``, ``message``), oldest first: the
        order they happened in, whichever stream or batch brought them."""
        return self._conn.all(
            sql.SQL(
                "SELECT event_time, message FROM (SELECT event_time, event_id, message FROM {events}"
                " WHERE hostname = %s AND vm_known ORDER BY event_time DESC, event_id DESC LIMIT %s) AS tail"
                " ORDER BY event_time, event_id"
            ).format(events=LOG_EVENTS),
            (hostname, limit),
        )

    def get_ingest(self, hostname: str) -> LogOverflow:
        """What the VM's logs did not store because its ingest window was full (all zero when
        it never overflowed)."""
        row = self._conn.one(
            sql.SQL("SELECT dropped_events, dropped_bytes FROM {ingest} WHERE hostname = %s").format(ingest=_INGEST),
            (hostname,),
        )
        return LogOverflow(row["dropped_events"], row["dropped_bytes"]) if row else LogOverflow(0, 0)
