"""Assignment: a researcher's email claims one free VM, and the count of free VMs."""

from __future__ import annotations

import secrets
import time

from psycopg2 import sql

from lablink.db.connection import Connection
from lablink.db.errors import ClaimRefused, NoFreeVm
from lablink.db.tables import FREE_POOL, VmTable
from lablink.models import Assignment
from lablink.tokens import hash_token, mint_token

# Pauses before each new attempt when the claim skipped free VMs whose rows were locked (a log
# batch or a telemetry update holds a row lock for milliseconds): about 60 ms in all, then
# "none free". Bounded, so a long-held lock never makes a researcher wait on it.
SKIPPED_ROW_RETRY_PAUSES_S = (0.002, 0.01, 0.05)


def new_pin() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


class Assignments:
    def __init__(self, connection: Connection, table: VmTable) -> None:
        self._conn = connection
        self._table = table
        self._claim = sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended(%(email)s, 0)); ") + sql.SQL(
            """
            WITH own AS (
                SELECT hostname, claim_token_hash = ANY(%(token_hashes)s) AS holder FROM {t}
                WHERE useremail = %(email)s
                FOR UPDATE
            ), free AS (
                SELECT hostname, FALSE AS rejoined FROM {t}
                WHERE NOT EXISTS (SELECT 1 FROM own)
                  AND {free}
                ORDER BY createdat, hostname
                FOR UPDATE SKIP LOCKED
                LIMIT 1
            ), target AS (
                SELECT hostname, TRUE AS rejoined FROM own WHERE holder
                UNION ALL SELECT * FROM free LIMIT 1
            ), claimed AS (
                UPDATE {t} AS vm
                   SET useremail = %(email)s,
                       crdcommand = %(command)s,
                       pin = %(pin)s,
                       inuse = FALSE,
                       status = 'assigned',
                       claim_token_hash = CASE WHEN target.rejoined THEN vm.claim_token_hash ELSE %(new_hash)s END,
                       assigned_at = CASE WHEN target.rejoined THEN vm.assigned_at ELSE now() END
                  FROM target
                 WHERE vm.hostname = target.hostname
                RETURNING vm.hostname, vm.pin, vm.claim_token_hash, target.rejoined
            )
            SELECT claimed.hostname, claimed.pin, claimed.claim_token_hash, claimed.rejoined,
                   EXISTS (SELECT 1 FROM own) AS held,
                   CASE WHEN claimed.hostname IS NULL THEN EXISTS (SELECT 1 FROM {t} WHERE {free}) END AS free_skipped
              FROM (VALUES (1)) AS always (one) LEFT JOIN claimed ON TRUE
            """
        ).format(t=table.identifier, free=FREE_POOL)
        self._count_free = sql.SQL("SELECT count(*) AS n FROM {t} WHERE {free}").format(t=table.identifier, free=FREE_POOL)

    def claim(self, email: str, crd_command: str, claim_token: str | None = None) -> Assignment:
        """Give ``email`` a VM: its own when it has one and ``claim_token`` is that claim's
        token (command and PIN replaced, token kept), else one running, unassigned VM claimed
        with FOR UPDATE SKIP LOCKED, in one UPDATE, with a fresh claim token. Raises
        ClaimRefused, changing nothing, when the email holds a VM and the token is not its own.

        The token minted for this call also counts as the holder's: a statement retried on a
        fresh connection after its first run committed finds its own claim and answers it.

        Requests of one email are serialized by a transaction-scoped advisory lock taken by a
        statement sent just before in the same query string (one round trip, one implicit
        transaction; the UPDATE takes a fresh snapshot after the lock), so a second click
        waits for the first and then finds its VM (the unique index on the email backs this
        up). Raises NoFreeVm when no VM is free.

        SKIP LOCKED also skips a free VM whose row someone else (telemetry, a log batch, a
        concurrent claim) has locked for a moment. So "nothing claimed" is believed only when
        the statement's snapshot, which a plain read sees without waiting on row locks, holds
        no free VM either (``free_skipped``, read in the same statement: no extra round trip);
        otherwise the claim is tried again after a short pause, a bounded number of times
        (SKIPPED_ROW_RETRY_PAUSES_S).
        """
        fresh_token = mint_token()
        tokens = {hash_token(token): token for token in (claim_token, fresh_token) if token}
        params = {"email": email, "command": crd_command, "token_hashes": list(tokens), "new_hash": hash_token(fresh_token)}
        for pause in (*SKIPPED_ROW_RETRY_PAUSES_S, None):
            row = self._conn.one(self._claim, {**params, "pin": new_pin()})
            if row is not None and row["hostname"] is not None:
                return Assignment(row["hostname"], row["pin"], row["rejoined"], tokens[row["claim_token_hash"]])
            if row is not None and row["held"]:
                raise ClaimRefused("This email already has a VM; ask again from the browser that got it, or with its claim token.")
            if pause is None or not (row and row["free_skipped"]):
                break
            time.sleep(pause)
        raise NoFreeVm("No available VMs. Please try again later.")

    def count_free(self) -> int:
        return int(self._conn.scalar(self._count_free))
