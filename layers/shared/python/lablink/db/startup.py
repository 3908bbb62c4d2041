"""Startup-phase timings of a VM (lablink.phases), merged in whatever order they arrive."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from psycopg2 import sql

from lablink.db.connection import Connection, Cursor, Row
from lablink.db.errors import UnknownVm
from lablink.db.tables import VmTable
from lablink.phases import METRIC_KEYS, PHASES, TOTAL_COLUMN


def _merge_statement(table: sql.Identifier) -> sql.Composed:
    """One UPDATE that merges any subset of phase values into a row and recomputes the total
    from the merged values, in the same statement: whatever order the phases arrive in, the
    last one to arrive sets the total. SET expressions read the row as locked by this UPDATE,
    so concurrent phase reports never compute from stale values.

    A duration is, in order: the one reported now, the one stored, end minus start."""
    assignments = []
    durations = []
    for phase in PHASES:
        start = sql.SQL("COALESCE(to_timestamp({p}::float8) AT TIME ZONE 'UTC', {c})").format(
            p=sql.Placeholder(f"{phase.key}_start"), c=sql.Identifier(phase.start_column)
        )
        end = sql.SQL("COALESCE(to_timestamp({p}::float8) AT TIME ZONE 'UTC', {c})").format(
            p=sql.Placeholder(f"{phase.key}_end"), c=sql.Identifier(phase.end_column)
        )
        duration = sql.SQL("COALESCE({p}::float8, {c}, EXTRACT(EPOCH FROM ({end} - {start}))::float8)").format(
            p=sql.Placeholder(f"{phase.key}_duration"), c=sql.Identifier(phase.duration_column), start=start, end=end
        )
        assignments += [
            sql.SQL("{} = {}").format(sql.Identifier(phase.start_column), start),
            sql.SQL("{} = {}").format(sql.Identifier(phase.end_column), end),
            sql.SQL("{} = {}").format(sql.Identifier(phase.duration_column), duration),
        ]
        durations.append(duration)
    assignments.append(sql.SQL("{} = {}").format(sql.Identifier(TOTAL_COLUMN), sql.SQL(" + ").join(durations)))
    return sql.SQL("UPDATE {t} SET {sets} WHERE hostname = %(hostname)s RETURNING {total} AS total").format(
        t=table, sets=sql.SQL(", ").join(assignments), total=sql.Identifier(TOTAL_COLUMN)
    )


class StartupTimes:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._merge = _merge_statement(table.identifier)

    def record(self, hostname: str, metrics: Mapping[str, float | None]) -> float | None:
        """Merge startup-phase values (epoch seconds, or seconds for durations) into a VM and
        return its total startup time (None until all three phases are known; an empty
        mapping recomputes it). Raises UnknownVm; ValueError for an unknown key or a value
        that is not a number."""
        unknown = set(metrics) - METRIC_KEYS.keys()
        if unknown:
            raise ValueError(f"unknown metric keys: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {f"{phase.key}_{part}": None for phase in PHASES for part in ("start", "end", "duration")}
        for key, value in metrics.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{key} must be a number")
            phase, part = METRIC_KEYS[key]
            params[f"{phase.key}_{part}"] = float(value)
        params["hostname"] = hostname

        def work(cur: Cursor) -> float | None:
            cur.execute(self._merge, params)
            row = cast(Row | None, cur.fetchone())
            if row is None:
                raise UnknownVm(hostname)
            return row["total"]

        return self._conn.run(work)
