"""Stand-ins for what a client VM has and the test machine lacks: start-host, nvidia-smi,
the subject software, docker/systemctl/the CloudWatch agent, all small scripts in a
directory put first on PATH. Shared by the unit and integration tests of the client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable


def write_script(directory: Path, name: str, body: str, interpreter: str = PYTHON) -> Path:
    path = directory / name
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# Records each call (argv after the program, stdin) as a JSON line; exits with the number
# in start-host.exit (0 when absent).
START_HOST = """
import json, pathlib, sys
here = pathlib.Path(__file__).parent
stdin = sys.stdin.read()
with open(here / "start-host.calls.jsonl", "a") as calls:
    calls.write(json.dumps({"argv": sys.argv[1:], "stdin": stdin}) + "\\n")
exit_file = here / "start-host.exit"
sys.exit(int(exit_file.read_text()) if exit_file.exists() else 0)
"""


class FakeHost:
    """A bin directory of fakes; ``env`` puts it first on PATH."""

    def __init__(self, directory: Path):
        self.bin = directory
        self.bin.mkdir(parents=True, exist_ok=True)
        write_script(self.bin, "start-host", START_HOST)
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    # start-host

    def start_host_calls(self) -> list[dict]:
        path = self.bin / "start-host.calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def start_host_exits(self, status: int) -> None:
        (self.bin / "start-host.exit").write_text(str(status))

    # nvidia-smi: "healthy", "failing" or "absent"

    def gpu(self, mode: str) -> None:
        path = self.bin / "nvidia-smi"
        if mode == "absent":
            path.unlink(missing_ok=True)
            return
        status = {"healthy": 0, "failing": 9}[mode]
        body = "echo 'GPU 0: Tesla T4 (UUID: GPU-fake)'\n" if status == 0 else "echo 'NVIDIA-SMI has failed' >&2\n"
        write_script(self.bin, "nvidia-smi", f"{body}exit {status}\n", interpreter="/bin/bash")

    # The subject software: a process named <software>-gui that sleeps until stopped.

    def start_software(self, software: str) -> subprocess.Popen:
        program = write_script(self.bin, f"{software}-gui", "import time\ntime.sleep(600)\n")
        process = subprocess.Popen([str(program)])
        self.processes.append(process)
        return process

    def stop_software(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
