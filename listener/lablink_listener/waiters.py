"""Waiting requests, kept in memory by hostname."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum


class Ending(Enum):
    ASSIGNED = "assigned"
    REMOVED = "removed"  # the VM's row was deleted while it waited
    SHUTDOWN = "shutdown"  # this listener is stopping; the client polls again


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    command: str | None = None
    pin: str | None = None


REMOVED = Outcome(Ending.REMOVED)
SHUTDOWN = Outcome(Ending.SHUTDOWN)


class Waiters:
    """hostname -> the futures of the requests waiting for it. Resolving a hostname answers
    every request of that host and forgets them; other hosts are untouched.

    A request is registered before its row is read (so that no notification can slip
    between the read and the registration) but counted as waiting, in len(), only once it
    is authenticated and unassigned."""

    def __init__(self) -> None:
        self._by_host: dict[str, set[asyncio.Future[Outcome]]] = {}
        self._waiting: set[asyncio.Future[Outcome]] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def hostnames(self) -> list[str]:
        return list(self._by_host)

    def add(self, hostname: str) -> asyncio.Future[Outcome]:
        future = asyncio.get_running_loop().create_future()
        self._by_host.setdefault(hostname, set()).add(future)
        return future

    def mark_waiting(self, future: asyncio.Future[Outcome]) -> None:
        if not future.done():
            self._waiting.add(future)

    def discard(self, hostname: str, future: asyncio.Future[Outcome]) -> None:
        self._waiting.discard(future)
        futures = self._by_host.get(hostname)
        if futures is None or future not in futures:
            return
        futures.remove(future)
        if not futures:
            del self._by_host[hostname]

    def resolve(self, hostname: str, outcome: Outcome) -> int:
        futures = self._by_host.pop(hostname, ())
        for future in futures:
            self._waiting.discard(future)
            if not future.done():
                future.set_result(outcome)
        return len(futures)

    def resolve_all(self, outcome: Outcome) -> int:
        return sum(self.resolve(hostname, outcome) for hostname in self.hostnames())
