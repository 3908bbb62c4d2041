"""The listener's queries, as plain text for asyncpg ($1-style placeholders). Only the
configured table name varies; it is quoted as an identifier by the same offline quoting that
`lablink generate-init-sql` uses. Nothing here imports a database driver."""

from __future__ import annotations

from dataclasses import dataclass

from lablink.config import DbConfig
from lablink.db.quoting import with_identifiers


@dataclass(frozen=True)
class ListenerQueries:
    vm: str  # $1 hostname -> hostname, crdcommand, pin, token_hash
    token_owner: str  # $1 token hash -> hostname
    assignments: str  # $1 text[] of hostnames -> hostname, crdcommand, pin of those that exist


def listener_queries(db: DbConfig) -> ListenerQueries:
    def text(template: str) -> str:
        return with_identifiers(template, t=db.table_name)

    return ListenerQueries(
        vm=text("SELECT hostname, crdcommand, pin, token_hash FROM {t} WHERE hostname = $1"),
        token_owner=text("SELECT hostname FROM {t} WHERE token_hash = $1 LIMIT 1"),
        assignments=text("SELECT hostname, crdcommand, pin FROM {t} WHERE hostname = ANY($1::text[])"),
    )
