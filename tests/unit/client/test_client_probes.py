"""GPU health from nvidia-smi, and the subject software found among the host's processes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from client_fakes import FakeHost

from lablink_client import probes
from lablink_local.waiting import wait_until


@pytest.fixture
def host(tmp_path, monkeypatch):
    fake = FakeHost(tmp_path / "bin")
    # Only the fakes and the basics: the machine's own nvidia-smi (if any) must not answer.
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    yield fake
    fake.stop_software()


@pytest.mark.parametrize(("mode", "expected"), [("healthy", "Healthy"), ("failing", "Unhealthy"), ("absent", "N/A")])
def test_gpu_status_follows_nvidia_smi(host, mode, expected):
    host.gpu(mode)
    assert probes.gpu_status() == expected


def test_nvidia_smi_that_cannot_run_its_driver_is_not_applicable(host):
    (host.bin / "nvidia-smi").write_text("#!/bin/bash\nexit 127\n")
    (host.bin / "nvidia-smi").chmod(0o755)
    assert probes.gpu_status() == "N/A"


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("sleap", True),
        ("sleap-label", True),
        ("sleap_train", True),
        ("sleap.exe", True),
        ("sleapy", False),
        ("xsleap", False),
    ],
)
def test_which_names_are_the_software(name, named):
    assert probes.is_software(name, "sleap") is named


def test_a_running_software_process_is_seen_and_its_end_too(host):
    software = f"soft{uuid.uuid4().hex[:6]}"
    assert not probes.software_running(software)
    host.start_software(software)
    wait_until(lambda: probes.software_running(software), message="the software process")
    host.stop_software()
    assert not probes.software_running(software)


def test_an_interpreter_running_the_software_module_counts(host, tmp_path):
    software = f"soft{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{software}.py").write_text("import time\ntime.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-m", software], cwd=tmp_path)
    try:
        wait_until(lambda: probes.software_running(software), message="python -m <software>")
    finally:
        process.kill()
        process.wait()


def test_a_mere_argument_naming_the_software_does_not_count(host):
    software = f"soft{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", software])
    try:
        time.sleep(0.3)
        assert not probes.software_running(software)
    finally:
        process.kill()
        process.wait()
