"""The access gate's settings as the admin set them at run time (one row; none: the
configuration's defaults apply)."""

from __future__ import annotations

from typing import TypedDict, cast

from psycopg2 import sql

from lablink.db.connection import Connection
from lablink.db.tables import ACCESS_SETTINGS


class AccessRow(TypedDict):
    code_hash: str | None
    allowed_emails: list[str]
    allowed_domains: list[str]


class AccessSettings:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def get(self) -> AccessRow | None:
        row = self._conn.one(
            sql.SQL("SELECT code_hash, allowed_emails, allowed_domains FROM {}").format(ACCESS_SETTINGS)
        )
        return cast(AccessRow | None, row)

    def set(self, row: AccessRow) -> None:
        """Replace the settings (the first call creates the row)."""
        self._conn.rowcount(
            sql.SQL(
                """
                INSERT INTO {t} (code_hash, allowed_emails, allowed_domains)
                VALUES (%(code_hash)s, %(allowed_emails)s, %(allowed_domains)s)
                ON CONFLICT (singleton) DO UPDATE
                   SET code_hash = EXCLUDED.code_hash,
                       allowed_emails = EXCLUDED.allowed_emails,
                       allowed_domains = EXCLUDED.allowed_domains,
                       updated_at = now()
                """
            ).format(t=ACCESS_SETTINGS),
            dict(row),
        )
