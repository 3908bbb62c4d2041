"""The agent's heartbeat: the in-use state is posted again while it stays the same, so that a
healthy VM whose state never changes is not taken for a silent one by the pool autopilot."""

from __future__ import annotations

import threading
import time

from lablink_client.agent import Agent, Watcher
from lablink_client.settings import Settings


def _watch(heartbeat: float | None, seconds: float) -> list[bool]:
    sent: list[bool] = []
    stop = threading.Event()
    watcher = Watcher(
        "in-use", lambda: False, lambda value: sent.append(value) or True, 0.02, stop, heartbeat=heartbeat
    )
    watcher.start()
    time.sleep(seconds)
    stop.set()
    watcher.wake.set()
    watcher.join(2)
    return sent


def test_an_unchanged_state_is_posted_again_every_heartbeat():
    sent = _watch(heartbeat=0.1, seconds=0.55)
    assert 4 <= len(sent) <= 7 and not any(sent)


def test_without_a_heartbeat_only_changes_are_posted():
    assert _watch(heartbeat=None, seconds=0.3) == [False]


def test_the_agent_beats_with_its_in_use_state():
    settings = Settings(
        hostname="vm-1", token="t" * 32, api_url="http://api", listener_url="http://listener", software="sleap"
    )
    assert settings.heartbeat_seconds == 60.0
    assert Agent(settings).in_use.heartbeat == settings.heartbeat_seconds
