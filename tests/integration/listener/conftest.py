"""Fixtures for the listener tests: the real app on a loopback port, started per test."""

from __future__ import annotations

import dataclasses

import pytest
from listener_support import TEST_SETTINGS, RunningListener

from lablink_local.postgres import free_port


@pytest.fixture
def start_listener(app_database_url):
    """The listener logs in as the application role, as in AWS (a missing grant fails here)."""
    started: list[RunningListener] = []

    def start(dsn: str | None = None, wait_until_healthy: bool = True, **overrides) -> RunningListener:
        settings = dataclasses.replace(TEST_SETTINGS, dsn=dsn or app_database_url, port=free_port(), **overrides)
        listener = RunningListener(settings, wait_until_healthy)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


@pytest.fixture
def listener(start_listener) -> RunningListener:
    return start_listener()
