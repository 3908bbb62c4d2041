"""The HTTP side: POST /vm_startup (long poll), GET /livez (liveness) and GET /healthz
(readiness), on aiohttp."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from lablink.db.listener_sql import listener_queries
from lablink.models import HOSTNAME_PATTERN, is_valid_hostname
from lablink.tokens import hash_token, token_matches
from lablink_listener.database import DatabaseUnavailable, Listen, Lookups, assigned
from lablink_listener.settings import Settings
from lablink_listener.waiters import SHUTDOWN, Ending, Outcome, Waiters

logger = logging.getLogger("lablink.listener")

SETTINGS = web.AppKey("settings", Settings)
WAITERS = web.AppKey("waiters", Waiters)
LISTEN = web.AppKey("listen", Listen)
LOOKUPS = web.AppKey("lookups", Lookups)
DRAINING = web.AppKey("draining", asyncio.Event)

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def unauthorized(message: str) -> web.Response:
    return error(401, message, **{"WWW-Authenticate": "Bearer"})


def outcome_body(outcome: Outcome) -> dict:
    if outcome.ending is Ending.ASSIGNED:
        return {"status": "success", "pin": outcome.pin, "command": outcome.command}
    return {"status": "error", "message": "This VM was removed while it waited for an assignment."}


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def parse_wait(request: web.Request, max_seconds: float) -> float | None:
    """The `wait=` query parameter in seconds, None when absent; ValueError when invalid."""
    raw = request.query.get("wait")
    if raw is None:
        return None
    seconds = float(raw)
    if not math.isfinite(seconds) or not 0 <= seconds <= max_seconds:
        raise ValueError
    return seconds


async def until_done(future: asyncio.Future, timeout: float) -> bool:
    await asyncio.wait({future}, timeout=timeout)
    return future.done()


async def vm_startup(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    arrived = asyncio.get_running_loop().time()
    token = bearer_token(request)
    if token is None:
        return unauthorized("An Authorization: Bearer <token> header is required.")
    try:
        wait = parse_wait(request, settings.max_wait_seconds)
    except ValueError:
        return error(
            400,
            f"wait must be a number of seconds from 0 to {settings.max_wait_seconds:g}: "
            "a longer silent wait would be cut off by the load balancer.",
        )
    try:
        body = json.loads(await request.read() or b"null")
    except web.HTTPRequestEntityTooLarge:
        return error(413, "The request body is larger than 1 MiB.")
    except ValueError:
        return error(400, "The request body must be JSON.")
    hostname = body.get("hostname") if isinstance(body, dict) else None
    if hostname is None:
        return error(400, 'The JSON body must hold "hostname".')
    if not is_valid_hostname(hostname):
        return error(400, f"hostname must match {HOSTNAME_PATTERN}.")
    if request.app[DRAINING].is_set():
        return error(503, "This listener is shutting down; poll again.", **{"Retry-After": "1"})

    waiters = request.app[WAITERS]
    # Registered before the row is read: an assignment committed after the read wakes
    # this waiter; one committed before it is in the row.
    future = waiters.add(hostname)
    try:
        lookups = request.app[LOOKUPS]
        try:
            row = await lookups.vm(hostname)
            # The token is judged before the hostname: without a valid token nobody learns
            # whether a hostname exists (a row's token is valid only for that row, so no
            # valid token ever asks for an unknown hostname's own row: no 404 here).
            if row is None or not token_matches(token, row["token_hash"]):
                owner = await lookups.token_owner(hash_token(token))
                if owner is not None:
                    return error(403, "This token belongs to another VM.")
                return unauthorized("The token is not valid.")
        except DatabaseUnavailable:
            return error(503, "The database is not reachable right now; poll again.", **{"Retry-After": "1"})
        if row["crdcommand"] is not None:
            return web.json_response(outcome_body(assigned(row["crdcommand"], row["pin"])))
        waiters.mark_waiting(future)
        if wait is not None:
            # Counted from the request's arrival: the lookups' time is silence the load balancer counts too.
            return await answer_within(future, wait - (asyncio.get_running_loop().time() - arrived))
        return await answer_with_heartbeats(request, future, settings.heartbeat_seconds)
    finally:
        waiters.discard(hostname, future)


async def answer_within(future: asyncio.Future[Outcome], wait: float) -> web.Response:
    if not await until_done(future, max(wait, 0.0)):
        return web.Response(status=204)
    outcome = future.result()
    if outcome.ending is Ending.SHUTDOWN:
        return error(503, "This listener is shutting down; poll again.", **{"Retry-After": "1"})
    return web.json_response(outcome_body(outcome))


async def answer_with_heartbeats(
    request: web.Request, future: asyncio.Future[Outcome], heartbeat: float
) -> web.StreamResponse:
    """200 at once, a space every heartbeat (JSON allows leading whitespace, and it keeps
    load balancers from closing an idle connection), then the JSON.

    The first space comes after a random part of the interval: VMs that all poll again at
    once (after a restart) would otherwise all be written to in the same instant, forever."""
    response = web.StreamResponse(status=200, headers=JSON_HEADERS)
    await response.prepare(request)
    try:
        pause = heartbeat * random.uniform(0.5, 1.0)
        while not await until_done(future, pause):
            await response.write(b" ")
            pause = heartbeat
        outcome = future.result()
        if outcome.ending is Ending.SHUTDOWN:
            # The status line is sent already: closing without a body tells the client to
            # poll again, like any dropped connection.
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof(json.dumps(outcome_body(outcome)).encode())  # body and end in one send
    except ConnectionResetError:
        pass  # the client left; its waiter is discarded by the caller
    return response


async def livez(_request: web.Request) -> web.Response:
    """Liveness (the load balancer's and ECS's check): answered by the event loop alone, so a
    database outage never gets a listener replaced; the LISTEN connection recovers by itself."""
    return web.json_response({"status": "ok"})


async def healthz(request: web.Request) -> web.Response:
    """Readiness: 503 while the LISTEN connection is down or the listener is draining."""
    waiters = len(request.app[WAITERS])
    if request.app[DRAINING].is_set():
        return web.json_response({"error": "shutting down", "waiters": waiters}, status=503)
    if not request.app[LISTEN].connected:
        return web.json_response({"error": "the LISTEN connection is down", "waiters": waiters}, status=503)
    return web.json_response({"status": "ok", "waiters": waiters})


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    queries = listener_queries(settings.db)
    app[LOOKUPS] = Lookups(settings, queries)
    await app[LOOKUPS].start()
    app[LISTEN] = Listen(settings, app[WAITERS], queries)
    app[LISTEN].start()
    yield
    await app[LISTEN].stop()
    await app[LOOKUPS].close()


async def _release_waiters(app: web.Application) -> None:
    """On shutdown (after the port stops accepting): every waiter is told to poll again,
    so open requests finish now instead of being cut at the shutdown timeout."""
    app[DRAINING].set()
    released = app[WAITERS].resolve_all(SHUTDOWN)
    logger.info("draining", extra={"released_waiters": released})


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[WAITERS] = Waiters()
    app[DRAINING] = asyncio.Event()
    app.router.add_post("/vm_startup", vm_startup)
    app.router.add_get("/livez", livez)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_release_waiters)
    return app


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then drain: stop accepting, release every waiter, let
    open requests finish (bounded by settings.shutdown_seconds), close the database."""
    runner = web.AppRunner(
        create_app(settings),
        handle_signals=False,
        handler_cancellation=True,  # a client that disconnects leaves no waiter behind
        access_log=None,
        shutdown_timeout=settings.shutdown_seconds,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=4096)
    await site.start()
    logger.info("listening", extra={"host": settings.host, "port": settings.port})
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        await runner.cleanup()
        logger.info("stopped")


def run(settings: Settings) -> None:
    """The process entry point: serve until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
