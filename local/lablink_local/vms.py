"""Simulated client VMs: for every instance the emulator runs, the real client agent runs as
a local process, configured by that instance's own user data.

A VM "boots" like the user data does (reports `initializing`, then its cloud-init timings),
then its agent runs with a stand-in `start-host` first on PATH (and no `nvidia-smi`, so GPU
health is N/A). Its agent's real in-use probe looks for a program of the VM's own (every VM
shares this machine's processes): run ``in_use_program(hostname)`` to put that VM in use.
Its log files are shipped to the client log group, into the stream its user
data's CloudWatch agent configuration names (the VM's own, lablink.tokens). When
the instance is terminated, its agent is stopped. Boot and container times are simulated
(a few seconds, jittered), so the dashboard's phase chart has something to show.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import shlex
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lablink.environment import DEPLOYMENT_TAG
from lablink.fleet.ec2 import HOSTNAME_TAG
from lablink.userdata import user_data_script
from lablink_local.lifeline import guard

log = logging.getLogger("lablink.local.vms")

SETTINGS_LINE = "LABLINK_AGENT_SETTINGS="
CLOUDWATCH_LINE = "LABLINK_CLOUDWATCH_CONFIG="
GZIP_MAGIC = b"\x1f\x8b"
START_HOST_CALLS = "start-host.calls.jsonl"

# The stand-in for Chrome Remote Desktop's start-host: records the call (argv, the PIN it was
# given on stdin) beside the VM's logs and says what a real one would have done.
FAKE_START_HOST = r"""
import json, os, pathlib, sys
name = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--name=")), "")
pins = sys.stdin.read().split()
calls = pathlib.Path(os.environ["LABLINK_VM_DIR"]) / "start-host.calls.jsonl"
with open(calls, "a") as handle:
    handle.write(json.dumps({"argv": sys.argv[1:], "pin": pins[0] if pins else None}) + "\n")
print(f"(simulated) Chrome Remote Desktop host {name} registered; the researcher can connect now")
"""


def in_use_program(hostname: str) -> str:
    """The program name whose process makes the simulated VM ``hostname`` in use (``exec -a
    NAME sleep 600``, say): the VM's "software", as its agent is told."""
    return f"lablink-simulated-software-{hostname}"


def _user_data_json(user_data: bytes, assignment: str) -> dict:
    """The JSON value of one ``NAME=...`` line of the user data (the script, or the script
    gzip-compressed)."""
    script = user_data_script(user_data) if user_data[:2] == GZIP_MAGIC else user_data.decode()
    for line in script.splitlines():
        if line.startswith(assignment):
            return json.loads(shlex.split(line[len(assignment) :])[0])
    raise ValueError(f"the user data holds no {assignment.rstrip('=')}")


def agent_settings_from_user_data(user_data: bytes) -> dict:
    """The agent's settings JSON, as the user data would write it on the VM."""
    return _user_data_json(user_data, SETTINGS_LINE)


def log_stream_from_user_data(user_data: bytes) -> str:
    """The stream the VM's CloudWatch agent writes to, as its user data configures it."""
    files = _user_data_json(user_data, CLOUDWATCH_LINE)["logs"]["logs_collected"]["files"]["collect_list"]
    return files[0]["log_stream_name"]


def path_without(program: str, path: str) -> str:
    """PATH without the directories that hold ``program``."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and not (Path(d) / program).exists())


@dataclass
class SimulatedVm:
    hostname: str
    instance_id: str
    directory: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def agent_log(self) -> Path:
        return self.directory / "agent.log"

    @property
    def boot_log(self) -> Path:
        return self.directory / "cloud-init-output.log"

    def start_host_calls(self) -> list[dict]:
        path = self.directory / START_HOST_CALLS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class VmSimulator(threading.Thread):
    """Watches the emulator's instances of one deployment; runs and stops their agents."""

    def __init__(
        self,
        ec2_client,
        environment: str,
        root: Path,
        ship: Callable[[Path, str], None],
        boot_seconds: float = 3.0,
        interval: float = 0.5,
        agent_overrides: dict | None = None,
    ):
        super().__init__(name="vm-simulator", daemon=True)
        self.ec2 = ec2_client
        self.environment = environment
        self.root = root
        self.ship = ship  # ship(path, stream): the VM's CloudWatch agent
        self.boot_seconds = boot_seconds
        self.interval = interval
        self.agent_overrides = agent_overrides or {}
        self.stopped = threading.Event()
        self.vms: dict[str, SimulatedVm] = {}  # instance id -> VM
        self._lock = threading.Lock()
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        start_host = self.bin / "start-host"
        start_host.write_text(f"#!{sys.executable}\n{FAKE_START_HOST}")
        start_host.chmod(start_host.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.vm_path = os.pathsep.join([str(self.bin), path_without("nvidia-smi", os.environ.get("PATH", os.defpath))])

    # -- watching ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.poll()
            except Exception:
                log.exception("vm-simulator: round failed")

    def running_instances(self) -> dict[str, str]:
        """instance id -> hostname of this deployment's running instances."""
        found = {}
        filters = [
            {"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [self.environment]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if HOSTNAME_TAG in tags:
                        found[instance["InstanceId"]] = tags[HOSTNAME_TAG]
        return found

    def poll(self) -> None:
        running = self.running_instances()
        with self._lock:
            gone = [self.vms.pop(iid) for iid in list(self.vms) if iid not in running]
            new = {iid: host for iid, host in running.items() if iid not in self.vms}
            for iid, hostname in new.items():
                self.vms[iid] = SimulatedVm(hostname, iid, self.root / "vms" / f"{hostname}-{iid}")
        for vm in gone:
            log.info("%s: instance terminated, stopping its agent", vm.hostname)
            self._stop_vm(vm)
        for vm in (self.vms[iid] for iid in new):
            threading.Thread(target=self._boot, args=(vm,), name=f"boot-{vm.hostname}", daemon=True).start()

    def by_hostname(self, hostname: str) -> SimulatedVm | None:
        with self._lock:
            return next((vm for vm in self.vms.values() if vm.hostname == hostname), None)

    # -- one VM's life ----------------------------------------------------------------------

    def _boot(self, vm: SimulatedVm) -> None:
        try:
            user_data = self.ec2.describe_instance_attribute(InstanceId=vm.instance_id, Attribute="userData")
            raw_user_data = base64.b64decode(user_data["UserData"]["Value"])
            settings = agent_settings_from_user_data(raw_user_data)
            vm.directory.mkdir(parents=True, exist_ok=True)
            log_stream = log_stream_from_user_data(raw_user_data)
            self.ship(vm.boot_log, log_stream)
            self.ship(vm.agent_log, log_stream)
            settings.update(
                software=in_use_program(vm.hostname),
                crd_launcher=[str(self.bin / "start-host")],
                # No container here: no host configs to list, no daemon to start.
                crd_host_configs_command=["true"],
                crd_daemon_command=["true"],
                ready_command=["sleep", f"{self._jitter(self.boot_seconds / 2):.2f}"],
                state_file=str(vm.directory / "agent-state.json"),
                check_seconds=5.0,
                wait_seconds=20.0,
                retry_min_seconds=0.2,
                retry_max_seconds=5.0,
                **self.agent_overrides,
            )
            settings_path = vm.directory / "agent.json"
            settings_path.write_text(json.dumps(settings))
            settings_path.chmod(0o600)

            cloud_init_start = time.time()
            self._boot_line(vm, "lablink: installing the LabLink agent (simulated VM)")
            self._one_shot(vm, settings_path, "report-status", "initializing")
            self._boot_line(vm, "lablink: waiting for Docker; pulling the image (simulated)")
            if vm.stopped.wait(self._jitter(self.boot_seconds)):
                return
            self._one_shot(vm, settings_path, "report-cloud-init", f"{cloud_init_start:.3f}", f"{time.time():.3f}")
            self._boot_line(vm, "lablink: starting the container and the agent service")
            container_start = time.time()
            with open(vm.agent_log, "ab") as out:
                self._spawn(vm, [*self._agent(settings_path), "run", "--container-start", f"{container_start:.3f}"], out)
        except Exception as error:
            log.exception("%s: simulated boot failed", vm.hostname)
            self._boot_line(vm, f"lablink: ERROR: simulated boot failed: {error}")

    @staticmethod
    def _jitter(seconds: float) -> float:
        return max(0.05, seconds * random.uniform(0.5, 1.5))

    def _env(self, vm: SimulatedVm) -> dict[str, str]:
        # What a VM has: no AWS credentials, no database; its own PATH with the stand-ins.
        return {"PATH": self.vm_path, "HOME": str(vm.directory), "LANG": "C.UTF-8", "LABLINK_VM_DIR": str(vm.directory)}

    def _boot_line(self, vm: SimulatedVm, line: str) -> None:
        vm.directory.mkdir(parents=True, exist_ok=True)
        with open(vm.boot_log, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    @staticmethod
    def _agent(settings_path: Path) -> list[str]:
        return [sys.executable, "-m", "lablink_client", "--settings", str(settings_path)]

    def _spawn(self, vm: SimulatedVm, argv: list[str], out) -> subprocess.Popen | None:
        """Start a process of the VM, unless the VM is stopped already (none is left behind)."""
        with self._lock:
            if vm.stopped.is_set():
                return None
            process = subprocess.Popen(argv, env=self._env(vm), stdout=out, stderr=out, stdin=subprocess.DEVNULL)
            # Forked by a boot thread, which ends before the agent: no parent-death signal.
            guard(process.pid)
            vm.processes.append(process)
            return process

    def _one_shot(self, vm: SimulatedVm, settings_path: Path, *command: str) -> None:
        with open(vm.boot_log, "ab") as out:
            process = self._spawn(vm, [*self._agent(settings_path), *command], out)
        if process is not None:
            process.wait()

    def _stop_vm(self, vm: SimulatedVm) -> None:
        with self._lock:
            vm.stopped.set()
            processes = list(vm.processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)
        with self._lock:
            vms = list(self.vms.values())
        threads = [threading.Thread(target=self._stop_vm, args=(vm,)) for vm in vms]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
