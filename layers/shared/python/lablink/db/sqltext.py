"""psycopg2.sql objects as text, without a database connection.

psycopg2 quotes identifiers and literals only through a live connection; `lablink
generate-init-sql` (printed for psql) needs the migrations' text without one, rendered here
with PostgreSQL's standard quoting rules (lablink.db.quoting).
"""

from __future__ import annotations

from psycopg2 import sql

from lablink.db.quoting import quote_identifier, quote_literal


def to_text(composable: sql.Composable) -> str:
    if isinstance(composable, sql.Composed):
        return "".join(to_text(part) for part in composable.seq)
    if isinstance(composable, sql.SQL):
        return composable.string
    if isinstance(composable, sql.Identifier):
        return ".".join(quote_identifier(s) for s in composable.strings)
    if isinstance(composable, sql.Literal):
        return quote_literal(composable.wrapped)
    raise TypeError(f"cannot render {type(composable).__name__} offline")
