"""Helpers of the reliability proof: figures, the proof's programs (fault injection, soak)
and the local stack (tests/support/proof_stack.py) each in a process of its own (the stack
sets up the process environment, AWS endpoint and database, for its functions).

The tests run the proof at CI scale; `python -m bench.prove` runs the same programs at full
size. LABLINK_PROOF_RESULTS=<dir> makes each test leave its figures there as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Each program runs as a module from the repository root (`python -m` puts it on sys.path).
ROOT = Path(__file__).resolve().parents[2]


def record(name: str, figures: dict) -> None:
    """Leave the figures where bench/prove.py collects them (nothing to do in plain CI runs)."""
    directory = os.environ.get("LABLINK_PROOF_RESULTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


def run_program(module: str, *args: str, timeout: float) -> dict:
    """Run `python -m <module>` (the same program bench/prove.py runs at full size) and return
    the JSON object of its last line; its output is kept for a failure's message."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"{module} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    return json.loads(lines[-1])


class StackProcess:
    """tests/support/proof_stack.py running; ``info`` is the JSON it printed (URLs, password, pids)."""

    def __init__(self, *args: str):
        # Its log to a file: a pipe nobody reads would block it once full.
        self.log = tempfile.NamedTemporaryFile(prefix="lablink-proof-stack-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.proof_stack", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
        )
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            raise RuntimeError(f"the stack did not start:\n{Path(self.log.name).read_text()[-6000:]}")
        self.info = json.loads(line)

    def stop(self) -> None:
        self.process.stdin.close()  # the stack stops everything it started, then exits
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
