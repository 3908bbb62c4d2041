"""PostgreSQL's standard quoting of identifiers and literals, in plain Python: for text that
is rendered without a connection (the listener's queries, `lablink generate-init-sql`). A
test compares it with psycopg2's quoting on a live connection."""

from __future__ import annotations


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


def with_identifiers(template: str, **identifiers: str) -> str:
    """``template`` with each ``{name}`` replaced by that identifier, quoted: the offline
    counterpart of ``psycopg2.sql.SQL(template).format(sql.Identifier(...))``. Only
    identifiers are substituted; values stay parameters."""
    return template.format_map({name: quote_identifier(value) for name, value in identifiers.items()})
