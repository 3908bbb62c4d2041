"""Helpers of the client integration tests: the real gateway and listener as local
processes, VM rows with tokens, and the real agent as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from client_fakes import FakeHost

from lablink.db.database import Database
from lablink.tokens import hash_token, mint_token
from lablink_local.postgres import free_port
from lablink_local.stack import terminate
from lablink_local.waiting import accepts_connections

PYTHON = sys.executable
STAGE = "local"


class Service:
    """A server process on a loopback port; its output goes to a log file for failures."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            if accepts_connections("127.0.0.1", self.port):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not open port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process:
            terminate(self.process)


def gateway_service(database_url: str, log_dir: Path, port: int | None = None) -> Service:
    port = port or free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LABLINK_CONFIG_JSON": json.dumps({"app": {"environment": "dev"}}),
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "LabLinkTest",
        "POWERTOOLS_SERVICE_NAME": "lablink-test",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    code = "import sys; from lablink_local.gateway import Gateway, serve; serve(port=int(sys.argv[1]), gateway=Gateway(stage=sys.argv[2]))"
    return Service("gateway", [PYTHON, "-c", code, str(port), STAGE], env, port, log_dir)


def listener_service(database_url: str, log_dir: Path, port: int | None = None) -> Service:
    port = port or free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LISTENER_PORT": str(port),
        "LISTENER_RECONCILE_SECONDS": "1",
        "LABLINK_CONFIG_JSON": json.dumps({"app": {"environment": "dev"}}),
    }
    return Service("listener", [PYTHON, "-m", "lablink_listener"], env, port, log_dir)


@dataclass
class Stack:
    database_url: str  # the superuser's: setup and inspection
    app_database_url: str  # the application role's: the listener's login
    db: Database
    gateway: Service
    listener: Service
    log_dir: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}/{STAGE}"

    @property
    def listener_url(self) -> str:
        return f"http://127.0.0.1:{self.listener.port}"

    def request_vm(self, email: str, crd_command: str, claim_token: str | None = None) -> tuple[int, dict]:
        """The researcher's POST /api/request_vm through the real API (asking again for the
        same email takes the first answer's claim token)."""
        body = {"email": email, "crd_command": crd_command} | ({"claim_token": claim_token} if claim_token else {})
        request = urllib.request.Request(
            f"{self.api_url}/api/request_vm",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def row(self, hostname: str) -> dict:
        return self.db.vms.get(hostname)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.log_dir.glob("*.log")))


@dataclass
class Vm:
    hostname: str
    token: str


def make_vm(stack: Stack, status: str = "initializing") -> Vm:
    hostname = f"lablink-vm-dev-{uuid.uuid4().hex[:8]}"
    token = mint_token()
    assert stack.db.vms.insert(hostname, status=status, token_hash=hash_token(token))
    return Vm(hostname, token)


FAST = {
    "check_seconds": 0.3,
    "wait_seconds": 2,
    "retry_min_seconds": 0.1,
    "retry_max_seconds": 0.5,
    "http_timeout_seconds": 5,
    "report_attempts": 3,
}


class AgentProcess:
    """The real agent (python -m lablink_client ... run) as its own process, as on a VM."""

    def __init__(self, host: FakeHost, vm: Vm, api_url: str, listener_url: str, software: str, tmp: Path, **extra):
        self.settings_path = tmp / "agent.json"
        settings = {
            "hostname": vm.hostname,
            "token": vm.token,
            "api_url": api_url,
            "listener_url": listener_url,
            "software": software,
            **host.crd_settings(),
            "ready_command": ["true"],
            "state_file": str(tmp / "state" / "agent-state.json"),
            **FAST,
            **extra,
        }
        self.settings_path.write_text(json.dumps(settings))
        self.log_path = tmp / "agent.log"
        self.host = host
        self.process: subprocess.Popen | None = None

    def start(self, container_start: float | None = None) -> AgentProcess:
        argv = [PYTHON, "-m", "lablink_client", "--settings", str(self.settings_path), "run"]
        if container_start is not None:
            argv += ["--container-start", str(container_start)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env=self.host.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process:
            terminate(self.process)
