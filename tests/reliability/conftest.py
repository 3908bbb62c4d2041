"""Fixtures of the reliability proof (helpers: proof_support.py)."""

from __future__ import annotations

import json
import os

import pytest
from api_fixtures import api_env, aws, gateway, launch_template, provisioner, vm_factory  # noqa: F401 - the API in-process, for the attack tests
from proof_support import StackProcess


def pytest_collection_modifyitems(items):
    """schemathesis gives every API operation's item of a fuzz test the same node id, and
    pytest-xdist, which schedules by node id, would silently run one of them: refuse."""
    if os.environ.get("PYTEST_XDIST_WORKER") and any(item.path.name == "test_fuzz.py" for item in items):
        raise pytest.UsageError("tests/reliability/test_fuzz.py runs without pytest-xdist: add -p no:xdist (scripts/test does)")


@pytest.fixture(scope="module")
def api_stack():
    """The API (gateway, real authorizer and functions), the listener, moto and PostgreSQL;
    no simulated VMs. A small fleet maximum keeps fuzzed launches cheap."""
    stack = StackProcess("--no-vms", "--config-json", json.dumps({"fleet": {"max_vms": 12}}))
    yield stack.info
    stack.stop()
