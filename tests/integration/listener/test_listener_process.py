"""`lablink listener` as a process: configuration from the environment, JSON logs, and a
graceful drain on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from db_probe import assignment_row
from listener_support import add_vm, poll, spawn_listener, wait_for

from lablink.config import ListenerConfig
from lablink_local.postgres import free_port


def libpq_variables(url: str) -> dict[str, str]:
    """The database as the ECS task gives it: PG* variables, no DATABASE_URL."""
    parts = urlsplit(url)
    return {
        "PGHOST": parts.hostname,
        "PGPORT": str(parts.port),
        "PGUSER": parts.username,
        "PGDATABASE": parts.path.lstrip("/"),
        "PGSSLMODE": "disable",
    }


@pytest.fixture(params=["DATABASE_URL", "PG variables"])
def listener_process(request, database_url, tmp_path):
    database = {"DATABASE_URL": database_url} if request.param == "DATABASE_URL" else libpq_variables(database_url)
    with open(tmp_path / "listener.log", "w+") as log:
        process, listener = spawn_listener(database, {"listener": {"heartbeat_seconds": 0.2}}, log)
        try:
            wait_for(lambda: listener.health()[0] == 200, timeout=30)
            yield process, listener, tmp_path / "listener.log"
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.mark.parametrize("listener_process", ["DATABASE_URL"], indirect=True)
def test_sigterm_releases_waiters_and_exits_cleanly(db, listener_process):
    process, listener, log_path = listener_process
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(2) as pool:
        heartbeat = pool.submit(poll, listener, "vm-1", token)
        bounded = pool.submit(poll, listener, "vm-1", token, wait=30)
        wait_for(lambda: listener.waiters() == 2)
        time.sleep(0.5)  # a few heartbeats go out

        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - signalled < 3

        # The bounded wait is told to come back; the heartbeat stream is cut before any
        # JSON, which a client treats as any dropped connection: it polls again.
        answer = bounded.result(timeout=5)
        assert answer.status == 503 and "poll again" in answer.json()["error"]
        with pytest.raises(requests.RequestException):
            heartbeat.result(timeout=5)
    assert assignment_row(db, "vm-1")["crdcommand"] is None

    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    messages = [entry["message"] for entry in entries]
    assert "LISTEN connection up" in messages and "stopped" in messages
    assert next(e for e in entries if e["message"] == "draining")["released_waiters"] == 2
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)


def test_the_process_delivers_an_assignment(db, listener_process):
    _, listener, _ = listener_process
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token)
        wait_for(lambda: listener.waiters() == 1)
        time.sleep(0.5)  # heartbeats every 0.2 s, as LABLINK_CONFIG_JSON says
        assignment = db.assignments.claim("ada@example.org", "start-host --code=4/abc")
        result = waiting.result(timeout=10)
    assert result.body.startswith(b"  ")
    assert result.json() == {"status": "success", "pin": assignment.pin, "command": "start-host --code=4/abc"}


def test_container_healthcheck_follows_livez_not_the_database(start_listener, monkeypatch):
    from lablink_listener import healthcheck

    # Nothing listens on this port: the LISTEN connection cannot come up.
    listener = start_listener(dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/none", wait_until_healthy=False)
    monkeypatch.setenv("LISTENER_PORT", str(listener.settings.port))
    wait_for(lambda: listener.health()[0] == 503)
    assert listener.liveness() == (200, {"status": "ok"})
    assert healthcheck.main() == 0  # ECS keeps the task: the database is not the process's fault
    listener.stop()
    assert healthcheck.main() == 1


def test_listen_connection_down_makes_healthz_503(start_listener):
    # Nothing listens on this port: the LISTEN connection cannot come up, the app still answers.
    listener = start_listener(dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/none", wait_until_healthy=False)
    wait_for(lambda: listener.health()[0] == 503)
    assert listener.health() == (503, {"error": "the LISTEN connection is down", "waiters": 0})
    result = poll(listener, "vm-1", "some-token")
    assert result.status == 503 and "poll again" in result.json()["error"]


@pytest.mark.parametrize("listener_process", ["DATABASE_URL"], indirect=True)
def test_the_process_caps_wait_below_the_load_balancer_idle_timeout(db, listener_process):
    """The cap comes from the configuration the process was given (LABLINK_CONFIG_JSON), as the
    load balancer's idle timeout does in the CDK app."""
    _, listener, _ = listener_process
    token = add_vm(db, "vm-1")
    cap = ListenerConfig(heartbeat_seconds=0.2).max_wait_seconds
    assert cap < ListenerConfig(heartbeat_seconds=0.2).idle_timeout_seconds

    refused = poll(listener, "vm-1", token, wait=cap + 1)

    assert refused.status == 400
    assert f"from 0 to {cap}:" in refused.json()["error"]
    assert poll(listener, "vm-1", token, wait=0.2).status == 204
