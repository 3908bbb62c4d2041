"""Fixtures of the reliability proof (helpers: proof_support.py)."""

from __future__ import annotations

import json

import pytest
from proof_support import StackProcess


@pytest.fixture(scope="module")
def api_stack():
    """The API (gateway, real authorizer and functions), the listener, moto and PostgreSQL;
    no simulated VMs. A small fleet maximum keeps fuzzed launches cheap."""
    stack = StackProcess("--no-vms", "--config-json", json.dumps({"fleet": {"max_vms": 12}}))
    yield stack.info
    stack.stop()
