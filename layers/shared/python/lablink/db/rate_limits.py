"""Rate limits of request_vm: attempts per source address and per email, counted in fixed
windows in PostgreSQL (every function instance shares them), in one statement per request."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from lablink.db.connection import Connection
from lablink.db.errors import RateLimited

RATE_LIMITS = sql.Identifier("rate_limit_windows")


@dataclass(frozen=True)
class Limit:
    attempts: int
    window_s: int


class RateLimits:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        # Each key's attempt is added to its current window unless the window is full; ended
        # windows are deleted on the way (bounded storage). A key that is not returned by the
        # upsert was full: the answer then says when its window ends.
        self._record = sql.SQL(
            """
            WITH ended AS (
                DELETE FROM {rl} WHERE window_end <= now()
            ), attempt (scope, key, window_s) AS (
                VALUES ('address', %(address)s, %(address_window_s)s),
                       ('email', %(email)s, %(email_window_s)s)
            ), windowed AS (
                SELECT scope, key,
                       to_timestamp(floor(extract(epoch FROM now()) / window_s) * window_s) AS window_start,
                       window_s
                  FROM attempt
            ), counted AS (
                INSERT INTO {rl} AS rl (scope, key, window_start, window_end, attempts)
                SELECT scope, key, window_start, window_start + make_interval(secs => window_s), 1
                  FROM windowed
                ON CONFLICT (scope, key, window_start) DO UPDATE SET attempts = rl.attempts + 1
                 WHERE rl.attempts < CASE rl.scope WHEN 'address' THEN %(address_attempts)s ELSE %(email_attempts)s END
                RETURNING rl.scope
            )
            SELECT windowed.scope,
                   ceil(extract(epoch FROM windowed.window_start + make_interval(secs => windowed.window_s) - now()))::int AS retry_after_s
              FROM windowed
             WHERE windowed.scope NOT IN (SELECT scope FROM counted)
             ORDER BY retry_after_s DESC
             LIMIT 1
            """
        ).format(rl=RATE_LIMITS)

    def record_attempt(self, address: str, email: str, per_address: Limit, per_email: Limit) -> None:
        """Count one request_vm attempt of ``address`` for ``email``; raises RateLimited
        (with the seconds until the full window ends) when either is over its limit."""
        refused = self._conn.one(
            self._record,
            {
                "address": address,
                "address_attempts": per_address.attempts,
                "address_window_s": per_address.window_s,
                "email": email,
                "email_attempts": per_email.attempts,
                "email_window_s": per_email.window_s,
            },
        )
        if refused is not None:
            who = "this network address" if refused["scope"] == "address" else "this email"
            raise RateLimited(f"Too many requests from {who}; try again in {refused['retry_after_s']} seconds.", max(1, refused["retry_after_s"]))
