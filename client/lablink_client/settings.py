"""The agent's settings: one JSON file written by the VM's user data (never the command
line, so the token stays out of process listings)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

CONTAINER_NAME = "lablink-client"
START_HOST = "/opt/google/chrome-remote-desktop/start-host"
HOST_DAEMON = "/opt/google/chrome-remote-desktop/chrome-remote-desktop"
# The image's user `client` (uid 1000): where CRD keeps its host#<hash>.json, and the runtime
# directory that logind would make outside a container (the image's start.sh makes it; CRD
# 148 crashes with SIGTRAP, exit 133, without it).
CRD_CONFIG_DIR = "/home/client/.config/chrome-remote-desktop"
RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR=/run/user/1000"


@dataclass(frozen=True)
class Settings:
    hostname: str
    token: str
    api_url: str
    listener_url: str
    software: str
    # What precedes the start-host arguments: on a VM, start-host inside the researcher's
    # container (DISPLAY cleared, as CRD asks); tests and the local stack run a stand-in.
    crd_launcher: list[str] = field(
        default_factory=lambda: [
            *("docker", "exec", "-i", "-e", "DISPLAY=", "-e", RUNTIME_DIR_ENV, CONTAINER_NAME, START_HOST)
        ]
    )
    # Lists the registered host configs, one "path mtime" line each: a line that is new after
    # start-host means it registered the host, whatever its exit status.
    crd_host_configs_command: list[str] = field(
        default_factory=lambda: [
            *("docker", "exec", CONTAINER_NAME, "find", CRD_CONFIG_DIR, "-maxdepth", "1"),
            *("-name", "host#*.json", "-printf", "%p %T@\\n"),
        ]
    )
    # The ExecStart and Environment of CRD's chrome-remote-desktop@.service, which systemd
    # would run after start-host; `--start` detaches and answers 0 when already running.
    crd_daemon_command: list[str] = field(
        default_factory=lambda: [
            *("docker", "exec", "-e", RUNTIME_DIR_ENV, "-e", "XDG_SESSION_CLASS=user", "-e", "XDG_SESSION_TYPE=x11"),
            *(CONTAINER_NAME, HOST_DAEMON, "--start", "--new-session"),
        ]
    )
    # Succeeds once the researcher's container can take a CRD session.
    ready_command: list[str] = field(default_factory=lambda: ["docker", "exec", CONTAINER_NAME, "true"])
    state_file: str = "/var/lib/lablink/agent-state.json"
    check_seconds: float = 20.0  # GPU and in-use checks; re-poll after a handled assignment
    # The in-use state is reported this often even when unchanged: the VM's heartbeat (keep
    # it well below the pool's unhealthy_after_s, 1500 s by default).
    heartbeat_seconds: float = 60.0
    wait_seconds: float = 50.0  # listener wait= (below the load balancer's idle timeout)
    retry_min_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    http_timeout_seconds: float = 10.0
    report_attempts: int = 6  # one-shot reports of the user data: then give up, never block boot
    crd_timeout_seconds: float = 120.0

    @classmethod
    def from_file(cls, path: str) -> Settings:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(unknown)}")
        return cls(**data)
