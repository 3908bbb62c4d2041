"""No assignment is lost: the LISTEN connection killed, PostgreSQL restarted or down for a
minute, the listener down, clients that disconnect."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing

import aiohttp
import pytest
import requests
from db_probe import session_count, terminate_sessions
from listener_support import add_vm, poll, spawn_listener, wait_for

from lablink.db.database import Database
from lablink_listener.settings import LISTEN_APPLICATION_NAME
from lablink_local.postgres import LocalPostgres, create_migrated_database

COMMAND = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Ab-fault" --name=$(hostname)'
N = 100


async def _wait_async(predicate, timeout: float = 20.0) -> None:
    await asyncio.to_thread(wait_for, predicate, timeout=timeout)


async def _long_poll(session: aiohttp.ClientSession, url: str, hostname: str, token: str) -> dict:
    async with session.post(
        url + "/vm_startup", json={"hostname": hostname}, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200
        return json.loads(await response.read())


def _wait_kill_assign(listener, db: Database, tokens: dict[str, str], fault) -> tuple[dict, dict]:
    """N VMs wait; ``fault()`` runs; every VM is assigned at once. Returns what each client
    received and what each assignment stored."""

    async def scenario():
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
            polls = {h: asyncio.create_task(_long_poll(session, listener.url, h, t)) for h, t in tokens.items()}
            await _wait_async(lambda: listener.waiters() == len(tokens))
            await asyncio.to_thread(fault)
            assignments = {}
            for i in range(len(tokens)):
                assignment = await asyncio.to_thread(db.assignments.claim, f"researcher{i}@example.org", COMMAND)
                assignments[assignment.hostname] = assignment.pin
            received = dict(zip(polls, await asyncio.wait_for(asyncio.gather(*polls.values()), 30), strict=True))
            return received, assignments

    return asyncio.run(scenario())


def _assert_all_delivered(received: dict, assignments: dict) -> None:
    assert len(assignments) == N
    assert received == {h: {"status": "success", "pin": pin, "command": COMMAND} for h, pin in assignments.items()}


def test_listen_connection_killed_then_every_vm_assigned_all_delivered(db, start_listener):
    # A reconnect delay of at least 1 s puts the assignments inside the outage: only the
    # reconcile after the reconnect can deliver them.
    listener = start_listener(reconnect_initial_seconds=2.0, reconnect_max_seconds=2.0)
    tokens = {f"vm-{i}": add_vm(db, f"vm-{i}") for i in range(N)}
    killed = []

    def kill_listen_connection():
        killed.append(terminate_sessions(db, LISTEN_APPLICATION_NAME))
        wait_for(lambda: listener.health()[0] == 503, timeout=5)

    received, assignments = _wait_kill_assign(listener, db, tokens, kill_listen_connection)

    assert killed == [1]
    _assert_all_delivered(received, assignments)
    wait_for(lambda: listener.health() == (200, {"status": "ok", "waiters": 0}))
    assert session_count(db, LISTEN_APPLICATION_NAME) >= 1


def test_postgres_restart_then_every_vm_assigned_all_delivered(start_listener):
    server = LocalPostgres()
    server.start()
    try:
        url = create_migrated_database(server.url, "lablink_restart")
        db = Database(url, actor="test")
        listener = start_listener(dsn=url)
        tokens = {f"vm-{i}": add_vm(db, f"vm-{i}") for i in range(N)}

        received, assignments = _wait_kill_assign(listener, db, tokens, lambda: server.restart(down_seconds=0.5))

        _assert_all_delivered(received, assignments)
        # The lookup pool recovered too: a poll after the restart is answered from the row.
        hostname = next(iter(assignments))
        assert poll(listener, hostname, tokens[hostname]).json()["pin"] == assignments[hostname]
        db.close()
    finally:
        server.stop()


def test_assignments_made_while_the_listener_is_down_are_delivered_when_vms_poll_again(db, start_listener):
    tokens = {f"vm-{i}": add_vm(db, f"vm-{i}") for i in range(5)}
    first = start_listener()
    first.stop()
    assignments = {}
    for i in range(5):
        assignment = db.assignments.claim(f"researcher{i}@example.org", COMMAND)
        assignments[assignment.hostname] = assignment.pin

    second = start_listener()
    for hostname, token in tokens.items():
        result = poll(second, hostname, token)
        assert result.json() == {"status": "success", "pin": assignments[hostname], "command": COMMAND}
        assert result.finished - result.started < 1.0


@pytest.mark.parametrize("clients", [1000])
def test_clients_that_connect_and_drop_leave_no_waiter(db, start_listener, clients):
    # Heartbeats far apart: a dropped client is noticed by the server, not by a failed write.
    listener = start_listener(heartbeat_seconds=120)
    token = add_vm(db, "vm-1", status="initializing")
    body = json.dumps({"hostname": "vm-1"}).encode()
    request = (
        b"POST /vm_startup HTTP/1.1\r\nHost: listener\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def connect(wait_for_headers: bool):
        reader, writer = await asyncio.open_connection(listener.settings.host, listener.settings.port)
        writer.write(request)
        await writer.drain()
        if wait_for_headers:
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        return writer

    async def scenario():
        # Half drop as soon as the request is sent (mid-lookup), half once they are waiting.
        writers = await asyncio.gather(*(connect(i % 2 == 0) for i in range(clients)))
        await _wait_async(lambda: listener.waiters() >= clients // 2)
        for writer in writers:
            writer.close()
        await _wait_async(lambda: listener.waiters() == 0, timeout=15)

    asyncio.run(scenario())
    assert listener.health() == (200, {"status": "ok", "waiters": 0})


OUTAGE_SECONDS = 60.0


def _poll_until_assigned(listener, hostname: str, token: str, stop: threading.Event) -> tuple[list[int], dict | None]:
    """A VM in `wait=` mode, as the client agent polls: again at once after a 204, after a
    pause after a 503 or a dropped connection. Returns every status it saw and the assignment."""
    statuses: list[int] = []
    while not stop.is_set():
        try:
            result = poll(listener, hostname, token, wait=2)
        except requests.RequestException:
            statuses.append(0)
        else:
            statuses.append(result.status)
            if result.status == 200:
                return statuses, result.json()
        if statuses[-1] != 204:
            stop.wait(0.5)
    return statuses, None


def test_database_down_a_minute_listener_stays_live_and_delivers_after(tmp_path):
    """PostgreSQL stopped for a minute (an RDS reboot, a failover) and started again: the
    listener process answers /livez 200 throughout (so neither the load balancer nor ECS
    replaces it), /healthz 503 while the database is down and 200 after; the VMs that kept
    waiting on it, and those that kept polling, get the assignments made once it is back."""
    with ExitStack() as stack:  # unwinds in reverse: polls stopped, listener killed, pool, server
        server = LocalPostgres()
        server.start()
        stack.callback(server.stop)
        url = create_migrated_database(server.url, "lablink_outage")
        with closing(Database(url, actor="test")) as db:
            streaming = {f"vm-s{i}": add_vm(db, f"vm-s{i}") for i in range(20)}
            bounded = {f"vm-w{i}": add_vm(db, f"vm-w{i}") for i in range(5)}
        pool = stack.enter_context(ThreadPoolExecutor(len(streaming) + len(bounded) + 1))
        log = stack.enter_context(open(tmp_path / "listener.log", "w+"))
        # The listener's own reconnect backoff (up to 2 s), as in AWS; heartbeats every second.
        process, listener = spawn_listener({"DATABASE_URL": url}, {"listener": {"heartbeat_seconds": 1}}, log)
        stack.callback(process.wait)
        stack.callback(process.kill)
        stop_polling = threading.Event()
        stack.callback(stop_polling.set)
        wait_for(lambda: listener.health()[0] == 200)

        streams = {h: pool.submit(poll, listener, h, t, timeout=30) for h, t in streaming.items()}
        wait_for(lambda: listener.waiters() == len(streaming))
        polling = {h: pool.submit(_poll_until_assigned, listener, h, t, stop_polling) for h, t in bounded.items()}
        wait_for(lambda: listener.waiters() == len(streaming) + len(bounded))

        outage = pool.submit(server.restart, down_seconds=OUTAGE_SECONDS)
        samples = []  # (seconds since the stop began, /livez status, /healthz status)
        began = time.monotonic()
        while not outage.done():
            samples.append((time.monotonic() - began, listener.liveness()[0], listener.health()[0]))
            assert process.poll() is None
            time.sleep(0.5)
        outage.result()
        back = time.monotonic() - began
        wait_for(lambda: listener.health()[0] == 200)
        ready_after = time.monotonic() - began - back

        with closing(Database(url, actor="test")) as db:
            pins = {}
            for i in range(len(streaming) + len(bounded)):
                assignment = db.assignments.claim(f"researcher{i}@example.org", COMMAND)
                pins[assignment.hostname] = assignment.pin
        received = {h: f.result(timeout=30) for h, f in streams.items()}
        seen = {h: f.result(timeout=30) for h, f in polling.items()}

        assert back >= OUTAGE_SECONDS
        assert [s for s in samples if s[1] != 200] == []  # live throughout
        # Ready no more once the stop has begun (the LISTEN connection is cut at once), until back.
        assert [s for s in samples if 1.0 < s[0] < OUTAGE_SECONDS and s[2] != 503] == []
        assert ready_after < 5  # the reconnect backoff is capped at 2 s
        assert process.poll() is None and listener.liveness()[0] == 200

        assert set(pins) == set(streaming) | set(bounded)
        for hostname, result in received.items():
            # One connection held through the outage: heartbeats kept coming, then the JSON.
            assert result.json() == {"status": "success", "pin": pins[hostname], "command": COMMAND}
            during = [at for at, _ in result.chunks if began + 5 < at < began + OUTAGE_SECONDS - 5]
            assert len(during) >= 30
        for hostname, (statuses, answer) in seen.items():
            assert answer == {"status": "success", "pin": pins[hostname], "command": COMMAND}
            assert 503 in statuses  # told to poll again while the database was down, never left hanging
