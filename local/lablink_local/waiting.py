"""Polling for a condition with a deadline: the local stack, the demo and the tests wait for
the system so."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, message: str = "condition") -> T:
    """The first truthy value of ``predicate()``; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


def answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now (a service still starting answers nothing, or 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def accepts_connections(host: str, port: int) -> bool:
    """Whether a server listens on ``host:port`` now (one still starting refuses)."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False
