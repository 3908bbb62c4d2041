"""Helpers of the listener tests: the real app served from a thread on a loopback port, VMs
with tokens, an HTTP poller that notes when each chunk arrives."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import requests

from lablink.db.database import Database
from lablink.models import VmStatus
from lablink.tokens import hash_token, mint_token
from lablink_listener.app import serve
from lablink_listener.settings import Settings
from lablink_local.postgres import free_port
from lablink_local.waiting import wait_until

# Short timings keep the suite fast. The periodic reconcile is long by default, so a test
# that sees a delivery within a second proves the NOTIFY path, not the periodic re-read.
TEST_SETTINGS = Settings(heartbeat_seconds=0.2, reconcile_seconds=60.0, reconnect_max_seconds=0.5, shutdown_seconds=2.0)


# The tests' waits are short: poll often.
wait_for = partial(wait_until, timeout=10.0, interval=0.02)


class ListenerEndpoint:
    """A listener reached over HTTP: its liveness, its readiness and how many VMs wait on it."""

    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str) -> tuple[int, dict]:
        try:
            response = requests.get(self.url + path, timeout=5)
        except requests.ConnectionError:
            return 0, {}
        return response.status_code, response.json()

    def liveness(self) -> tuple[int, dict]:
        return self._get("/livez")

    def health(self) -> tuple[int, dict]:
        return self._get("/healthz")

    def waiters(self) -> int:
        return self.health()[1].get("waiters", -1)


class RunningListener(ListenerEndpoint):
    """The listener app served from a thread with its own event loop."""

    def __init__(self, settings: Settings, wait_until_healthy: bool = True):
        super().__init__(f"http://{settings.host}:{settings.port}")
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        wait_for(lambda: self.health()[0] == 200 if wait_until_healthy else self.liveness()[0] == 200)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve(self.settings, self._stop))
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)


LABLINK = Path(sys.executable).with_name("lablink")


def spawn_listener(database: dict[str, str], config: dict, log: IO[str]) -> tuple[subprocess.Popen, ListenerEndpoint]:
    """`lablink listener` as its own process, configured from the environment as in the image
    (``database``: DATABASE_URL or the PG* variables); returns once it answers /livez."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    env.update(database, LISTENER_PORT=str(port), LABLINK_CONFIG_JSON=json.dumps(config))
    process = subprocess.Popen([str(LABLINK), "listener"], env=env, stdout=log, stderr=subprocess.STDOUT)
    listener = ListenerEndpoint(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: listener.liveness()[0] == 200 or process.poll() is not None, timeout=30)
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"the listener exited at start:\n{log.read()}")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, listener


def add_vm(db: Database, hostname: str, status: VmStatus = VmStatus.RUNNING) -> str:
    """A VM row with a fresh token (stored hashed, as at launch); returns the token."""
    token = mint_token()
    assert db.vms.insert(hostname, status=status, token_hash=hash_token(token))
    return token


@dataclass
class Poll:
    status: int
    body: bytes
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic arrival, bytes)
    started: float = 0.0
    finished: float = 0.0

    def json(self):
        return json.loads(self.body)


def poll(
    listener: RunningListener,
    hostname: str | None,
    token: str | None,
    *,
    wait: float | None = None,
    body: bytes | None = None,
    timeout: float = 20.0,
) -> Poll:
    """POST /vm_startup and read the whole response, noting when each chunk arrives."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is None:
        body = json.dumps({"hostname": hostname}).encode()
    params = {"wait": wait} if wait is not None else None
    started = time.monotonic()
    with requests.post(
        listener.url + "/vm_startup", data=body, headers=headers, params=params, stream=True, timeout=timeout
    ) as response:
        result = Poll(response.status_code, b"", started=started)
        for chunk in response.iter_content(chunk_size=None):
            result.chunks.append((time.monotonic(), chunk))
            result.body += chunk
    result.finished = time.monotonic()
    return result
