"""The synthesized bundle run on the Lambda runtime's Python: a Debian root holding that
Python (scripts/runtime-python, named by LABLINK_RUNTIME_ROOT; .ci/run builds it), each
function's asset mounted at /var/task and the layer's python/ at /opt/python, read-only, in a
mount namespace of its own (unshare), as Lambda lays them out. AWS is a moto server on this
machine, the database the tests' real PostgreSQL over TCP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from assembly import Synth, shared_root, synthesize
from bundle_support import STARTUP_SCRIPT, LambdaRoot
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def runtime_root() -> Path:
    root = os.environ.get("LABLINK_RUNTIME_ROOT")
    if not root:
        pytest.skip("LABLINK_RUNTIME_ROOT is not set: export LABLINK_RUNTIME_ROOT=\"$(scripts/runtime-python)\" (as root)")
    if not (Path(root) / ".lablink-ready").is_file():
        pytest.fail(f"LABLINK_RUNTIME_ROOT={root} is not a root made by scripts/runtime-python")
    return Path(root)


@pytest.fixture(scope="session")
def bundle_synth(tmp_path_factory) -> Synth:
    """The default deployment with a startup script configured (the file exists only here)."""
    script = shared_root(tmp_path_factory) / "workshop-startup.sh"
    script.write_text(STARTUP_SCRIPT)
    return synthesize(tmp_path_factory, "bundle", {"startup_script": {"path": str(script), "on_error": "fail"}})


@pytest.fixture
def lambda_root(runtime_root, bundle_synth, monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    yield LambdaRoot(runtime_root, bundle_synth, endpoint)
    server.stop()
