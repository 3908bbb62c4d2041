"""The listener's two kinds of database use: ONE connection that LISTENs (and reconciles),
and a small pool for the lookups of arriving requests. All SQL text comes from
lablink.db.listener_sql."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import asyncpg

from lablink.db.listener_sql import ListenerQueries, listener_queries
from lablink_listener.settings import LISTEN_APPLICATION_NAME, QUERY_APPLICATION_NAME, Settings
from lablink_listener.waiters import REMOVED, Ending, Outcome, Waiters

logger = logging.getLogger("lablink.listener")

# The errors that mean "the database is not reachable right now" (retry, reconnect, 503).
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


class DatabaseUnavailable(Exception):
    """The lookup could not reach the database."""


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The lookups are single read-only statements that leave no session state behind, so
    the pool's default reset query (a second round trip per lookup) is skipped."""


class Lookups:
    """Queries of arriving requests, on a small pool (created lazily: the listener starts,
    and answers /healthz, even while the database is down)."""

    def __init__(self, settings: Settings, queries: ListenerQueries):
        self._settings = settings
        self._queries = queries
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = asyncpg.create_pool(
            self._settings.dsn,
            min_size=0,
            max_size=self._settings.query_pool_size,
            timeout=10,
            command_timeout=10,
            server_settings={"application_name": QUERY_APPLICATION_NAME},
            reset=_keep_session,
        )
        await self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _fetchrow_once(self, query: str, *args) -> asyncpg.Record | None:
        if self._pool is None:
            raise RuntimeError("Lookups.start() must be awaited before a lookup")
        async with self._pool.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def _fetchrow(self, query: str, *args) -> asyncpg.Record | None:
        try:
            return await self._fetchrow_once(query, *args)
        except UNAVAILABLE:
            pass  # a pooled connection may have died with the server: once more, on a fresh one
        try:
            return await self._fetchrow_once(query, *args)
        except UNAVAILABLE as error:
            raise DatabaseUnavailable(str(error)) from error

    async def vm(self, hostname: str) -> asyncpg.Record | None:
        return await self._fetchrow(self._queries.vm, hostname)

    async def token_owner(self, token_hash: str) -> str | None:
        row = await self._fetchrow(self._queries.token_owner, token_hash)
        return row["hostname"] if row else None


def assigned(command: str, pin: str | None) -> Outcome:
    return Outcome(Ending.ASSIGNED, command, pin)


class Listen:
    """The LISTEN connection: connects, LISTENs, reconciles every waiter, then waits for
    notifications; on loss, reconnects with capped, jittered exponential backoff."""

    def __init__(self, settings: Settings, waiters: Waiters, queries: ListenerQueries | None = None):
        self._settings = settings
        self._waiters = waiters
        self._queries = queries or listener_queries(settings.db)
        self.connected = False
        self.connects = 0  # successful connections so far (1 + reconnects)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        failures = 0
        while True:
            connects = self.connects
            try:
                await self._session()
            except UNAVAILABLE as error:
                logger.warning("LISTEN connection failed", extra={"error": repr(error)})
            except Exception:
                # Anything else (a permission, a missing table) is retried the same way:
                # /healthz says 503 meanwhile, which is what the operator must see.
                logger.exception("LISTEN session failed")
            failures = 0 if self.connects > connects else failures + 1
            delay = self._backoff(failures)
            logger.info("reconnecting", extra={"delay_seconds": round(delay, 3)})
            await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter: uniform in [ceiling / 2, ceiling], so that
        many listener tasks losing the same database do not reconnect in lockstep."""
        ceiling = min(self._settings.reconnect_max_seconds, self._settings.reconnect_initial_seconds * 2**failures)
        return random.uniform(ceiling / 2, ceiling)

    async def _session(self) -> None:
        conn = await asyncpg.connect(
            self._settings.dsn,
            timeout=10,
            command_timeout=30,
            server_settings={"application_name": LISTEN_APPLICATION_NAME},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._settings.db.message_channel, self._on_notification)
            self.connected = True
            self.connects += 1
            logger.info(
                "LISTEN connection up",
                extra={"channel": self._settings.db.message_channel, "connects": self.connects},
            )
            # LISTEN is in force before the read: an assignment committed after the read
            # notifies, one committed before it is in the rows. Nothing falls between.
            await self._reconcile(conn)
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self._settings.reconcile_seconds)
                except TimeoutError:
                    await self._reconcile(conn)
            logger.warning("LISTEN connection lost")
        finally:
            self.connected = False
            if not conn.is_closed():
                conn.terminate()

    async def _reconcile(self, conn: asyncpg.Connection) -> None:
        """Read the rows of every current waiter; answer the assigned and the removed."""
        hostnames = self._waiters.hostnames()
        rows = await conn.fetch(self._queries.assignments, hostnames)
        present = set()
        answered = 0
        for row in rows:
            present.add(row["hostname"])
            if row["crdcommand"] is not None:
                answered += self._waiters.resolve(row["hostname"], assigned(row["crdcommand"], row["pin"]))
        removed = [h for h in hostnames if h not in present]
        for hostname in removed:
            answered += self._waiters.resolve(hostname, REMOVED)
        if answered:
            logger.info(
                "reconciled waiters",
                extra={"checked": len(hostnames), "answered": answered, "removed_hosts": len(removed)},
            )

    def _on_notification(self, _conn, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            hostname = message["HostName"]
            command = message.get("CrdCommand")
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed notification", extra={"payload": payload[:200]})
            return
        if command is None:  # a row inserted or unassigned: nobody waits for that
            return
        woken = self._waiters.resolve(hostname, assigned(command, message.get("Pin")))
        if woken:
            logger.info("assignment delivered", extra={"hostname": hostname, "requests": woken})
