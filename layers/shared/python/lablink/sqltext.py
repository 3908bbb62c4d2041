"""psycopg2.sql objects as text, without a database connection.

psycopg2 quotes identifiers and literals only through a live connection. Two places need
the text without one: `lablink generate-init-sql` (printed for psql) and the listener's
asyncpg queries. Both take their SQL from the same psycopg2.sql compositions as everything
else, rendered here with PostgreSQL's standard quoting rules (a test compares the result
with psycopg2's own quoting on a live connection).
"""

from __future__ import annotations

from psycopg2 import sql


def quote_identifier(name: str) -> str:
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot render a literal of type {type(value).__name__} offline")
    if "\x00" in value:
        raise ValueError("text literals cannot contain NUL")
    # standard_conforming_strings is on (the default since PostgreSQL 9.1): backslashes are
    # literal inside '...', so doubling the quote is the whole escape. E'' makes that explicit
    # whatever the server setting.
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


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
