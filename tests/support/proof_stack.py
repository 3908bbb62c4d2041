"""The local stack (`lablink local`) with the handles the proof needs, and nothing rewritten:

- its own PostgreSQL cluster, so the proof can restart it (every connection drops);
- the listener found as a child process, so the proof can kill it and start it again on the
  same port (the VMs' agents know that URL from their user data);
- a client agent killed and started again as its service manager would;
- optionally, the API gateway in a process of its own (to watch its memory alone), and no
  simulated VMs (for the fuzzer, whose launches must not boot hundreds of agents).

    .venv/bin/python -m tests.support.proof_stack [--no-vms] [--gateway-process]

runs it until stdin closes or SIGTERM, after printing one JSON line: api_url,
admin_password, database_url (direct; the functions go through the stack's PgBouncer),
listener_url, pids.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lablink.config import LablinkConfig
from lablink_local.postgres import LocalPostgres, free_port
from lablink_local.stack import HOST, STAGE, LocalStack, terminate
from lablink_local.waiting import accepts_connections, answers_ok, wait_until

GATEWAY_CODE = (
    "import sys; from lablink_local.gateway import Gateway, serve; "
    "serve(host=sys.argv[1], port=int(sys.argv[2]), gateway=Gateway(stage=sys.argv[3], region=sys.argv[4]))"
)


def child_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 4 of /proc/<pid>/stat is the parent; the command name (field 2) may hold spaces.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    return (Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace")).split("\0")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class ProofStack(LocalStack):
    def __init__(self, config: LablinkConfig, *, vms: bool = True, gateway_process: bool = False, **kwargs):
        kwargs.setdefault("admin_password", secrets.token_urlsafe(12))
        self._own_state_dir = "state_dir" not in kwargs
        kwargs.setdefault("state_dir", Path(tempfile.mkdtemp(prefix="lablink-proof-")))
        kwargs.setdefault("port", 0)
        kwargs.setdefault("progress", lambda text: None)
        # The proofs measure the API and its faults with the VMs they launch themselves; the
        # autopilot would act on those VMs (its own proofs: tests/integration/pool, tests/e2e).
        kwargs.setdefault("reconcile_seconds", 0)
        super().__init__(config, **kwargs)
        self.with_vms = vms
        self.gateway_process = gateway_process
        self.gateway: subprocess.Popen | None = None
        self.postgres = LocalPostgres()

    def start(self) -> None:
        # The stack creates its database on DATABASE_URL's server: this cluster, ours to restart.
        os.environ["DATABASE_URL"] = self.postgres.start()
        if self._own_state_dir:  # called last: after every process that writes there has stopped
            self._cleanup.callback(shutil.rmtree, self.state_dir, ignore_errors=True)
        self._cleanup.callback(self.postgres.stop)
        super().start()

    def _start_gateway(self) -> str:
        if not self.gateway_process:
            return super()._start_gateway()
        port = free_port()
        self.api_url = f"http://{HOST}:{port}/{STAGE}"
        os.environ["API_URL"] = self.api_url  # the launches' user data points the VMs here
        with open(self.state_dir / "gateway.log", "ab") as log:
            self.gateway = subprocess.Popen(
                [sys.executable, "-c", GATEWAY_CODE, HOST, str(port), STAGE, self.config.app.region],
                env=dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._cleanup.callback(terminate, self.gateway)
        deadline = time.monotonic() + 30
        while not accepts_connections(HOST, port):
            if self.gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway process did not start: see gateway.log")
            time.sleep(0.05)
        return self.api_url

    def _start_vms(self) -> str:
        if self.with_vms:
            return super()._start_vms()
        return "no simulated VMs"

    # -- the handles of the proof -----------------------------------------------------------

    @property
    def listener_url(self) -> str:
        return os.environ["LISTENER_URL"]

    def listener_pid(self) -> int | None:
        for pid in child_pids(os.getpid()):
            try:
                if "lablink_listener" in cmdline(pid):
                    return pid
            except OSError:
                continue
        return None

    def kill_listener(self) -> tuple[list[str], dict[str, str]]:
        """SIGKILL the listener (no drain, no goodbye); returns what starts it again."""
        pid = self.listener_pid()
        if pid is None:
            raise RuntimeError("no listener is running")
        argv = cmdline(pid)
        env = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item
        )
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        return argv, env

    def start_listener(self, argv: list[str], env: dict[str, str]) -> int:
        with open(self.state_dir / "listener.log", "ab") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._cleanup.callback(terminate, process)
        wait_until(lambda: answers_ok(self.listener_url + "/healthz"), 30, interval=0.1, message="the listener to answer 200")
        return process.pid

    def restart_postgres(self, down_seconds: float) -> None:
        self.postgres.restart(down_seconds)

    def kill_agent(self, hostname: str) -> bool:
        """SIGKILL the VM's agent service and start it again, as systemd's Restart= would.
        False when the VM has no agent running yet (still booting)."""
        vm = self.simulator.by_hostname(hostname) if self.simulator else None
        if vm is None:
            return False
        running = [p for p in vm.processes if p.poll() is None and "run" in p.args]
        if not running:
            return False
        process = running[-1]
        process.kill()
        process.wait()
        with open(vm.agent_log, "ab") as out:
            out.write(b"(proof: agent killed with SIGKILL and started again)\n")
            self.simulator._spawn(vm, list(process.args), out)
        return True

    def describe(self) -> dict:
        return {
            "api_url": self.api_url,
            "admin_password": self.admin_password,
            "database_url": self.database_url,
            "listener_url": self.listener_url,
            "listener_pid": self.listener_pid(),
            "gateway_pid": self.gateway.pid if self.gateway else os.getpid(),
            "stack_pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "aws_endpoint_url": self.cloud.endpoint_url if self.cloud else None,
        }


def _exit(*_) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-vms", action="store_true", help="no simulated VMs (launches still create instances)")
    parser.add_argument("--gateway-process", action="store_true", help="the API gateway in a process of its own")
    parser.add_argument("--config-json", default="{}", help="LablinkConfig as JSON")
    parser.add_argument("--boot-seconds", type=float, default=1.0)
    args = parser.parse_args()
    stack = ProofStack(
        LablinkConfig.model_validate_json(args.config_json),
        vms=not args.no_vms,
        gateway_process=args.gateway_process,
        boot_seconds=args.boot_seconds,
        log_interval=0.5,
    )
    signal.signal(signal.SIGTERM, _exit)
    try:
        stack.start()
        print(json.dumps(stack.describe()), flush=True)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the functions' logs go with ours, not to the reader of that line
        try:
            sys.stdin.read()  # until the parent closes our stdin, or exits
        except (OSError, ValueError):
            pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
