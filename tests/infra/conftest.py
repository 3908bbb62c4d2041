"""One synth per configuration for the whole test session, shared by every xdist worker.

The synth is the command the deploy guide gives, `npx cdk synth`, run without any AWS
credentials; the tests read the cloud assembly it writes (templates, assets, cdk-nag report).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from assembly import LAB_CONFIG, ROOT, SYNTH_TIMEOUT, Synth, offline_environment

from lablink.config import parse_config


def _shared_root(tmp_path_factory) -> Path:
    """A folder every xdist worker of this session sees."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _synth(tmp_path_factory, name: str, config: dict | None) -> Synth:
    root = _shared_root(tmp_path_factory)
    outdir = root / f"cdk-{name}"
    result_file = root / f"cdk-{name}.json"
    with open(root / f"cdk-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker synthesizes, the others wait and reuse
        if not result_file.exists():
            command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir)]
            if config is not None:
                config_file = root / f"{name}.yaml"
                config_file.write_text(yaml.safe_dump(config))
                command += ["--context", f"config={config_file}"]
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=offline_environment(),
                capture_output=True,
                text=True,
                timeout=SYNTH_TIMEOUT,
                check=False,
            )
            result_file.write_text(json.dumps({"returncode": done.returncode, "output": done.stdout + done.stderr}))
    result = json.loads(result_file.read_text())
    return Synth(outdir, parse_config(config or {}), result["returncode"], result["output"])


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """The default configuration (no config file), as a fresh clone synthesizes it."""
    return _synth(tmp_path_factory, "default", None)


@pytest.fixture(scope="session")
def lab_synth(tmp_path_factory) -> Synth:
    """A configuration with every deploy switch flipped (NAT instance, no deletion protection...)."""
    return _synth(tmp_path_factory, "lab", LAB_CONFIG)


@pytest.fixture(scope="session", params=["default", "lab"])
def any_synth(request) -> Synth:
    return request.getfixturevalue("synth" if request.param == "default" else "lab_synth")
