"""The agent's life on a VM: ready -> container metrics -> `running` -> wait for the
assignment, forever; beside it, GPU health and in-use watchers. No error stops it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from lablink_client import crd, probes
from lablink_client.api import Backoff, Client
from lablink_client.settings import Settings

log = logging.getLogger("lablink.agent")

Probed = TypeVar("Probed")


class State:
    """What must survive a restart of the agent or a reboot of the VM: whether the container
    metrics were posted, and the last assignment handled (so it is not run twice)."""

    def __init__(self, path: str):
        self.path = path
        self.data = {}
        try:
            with open(path, encoding="utf-8") as handle:
                self.data = json.load(handle)
        except (OSError, ValueError):
            pass

    def get(self, key: str):
        return self.data.get(key)

    def set(self, key: str, value) -> None:
        self.data[key] = value
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            temporary = self.path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle)
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("cannot save the agent state to %s: %s", self.path, error)


class Watcher(threading.Thread, Generic[Probed]):
    """Checks something every ``interval`` seconds and reports it when it changed, when asked
    to report again, or (with a ``heartbeat``) when its last report is that many seconds old;
    a report that failed is retried at the next check."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], Probed],
        report: Callable[[Probed], bool],
        interval: float,
        stop: threading.Event,
        heartbeat: float | None = None,
    ):
        super().__init__(name=name, daemon=True)
        self.probe, self.send, self.interval, self.stop = probe, report, interval, stop
        self.heartbeat = heartbeat
        self.wake = threading.Event()
        self.force = False

    def report_again(self) -> None:
        self.force = True
        self.wake.set()

    def run(self) -> None:
        reported: Probed | object = object()  # nothing reported yet
        reported_at = 0.0  # time.monotonic() of the last report
        while not self.stop.is_set():
            self.wake.clear()
            force, self.force = self.force, False
            try:
                value = self.probe()
                due = self.heartbeat is not None and time.monotonic() - reported_at >= self.heartbeat
                if value != reported or force or due:
                    if self.send(value):
                        if value != reported or force:  # a heartbeat alone is not worth a line
                            log.info("%s: reported %s", self.name, value)
                        reported, reported_at = value, time.monotonic()
                    elif force:
                        self.force = True  # the next check tries again
            except Exception:  # never let a check end the watcher
                log.exception("%s: check failed", self.name)
                self.force = self.force or force
            self.wake.wait(self.interval)


class Agent:
    def __init__(self, settings: Settings, container_start: float | None = None):
        self.settings = settings
        self.container_start = container_start
        self.stop = threading.Event()
        self.client = Client(settings, self.stop)
        self.state = State(settings.state_file)
        self.gpu = Watcher("gpu-health", probes.gpu_status, self.client.report_gpu, settings.check_seconds, self.stop)
        self.in_use = Watcher(
            "in-use",
            lambda: probes.software_running(settings.software),
            self.client.report_in_use,
            settings.check_seconds,
            self.stop,
            # The server takes any report as a sign of life: without one for
            # pool.unhealthy_after_s, the pool autopilot reboots the VM.
            heartbeat=settings.heartbeat_seconds,
        )

    # -- startup --------------------------------------------------------------------------

    def wait_until_ready(self) -> None:
        backoff = Backoff(self.settings.retry_min_seconds, self.settings.retry_max_seconds)
        while not self.stop.is_set():
            try:
                done = subprocess.run(self.settings.ready_command, capture_output=True, timeout=60, check=False)
                if done.returncode == 0:
                    return
                problem = f"exit status {done.returncode}"
            except (OSError, subprocess.TimeoutExpired) as error:
                problem = str(error)
            delay = backoff.next_delay()
            log.info("container not ready yet (%s); checking again in %.1f s", problem, delay)
            self.stop.wait(delay)

    def report_ready(self) -> None:
        """Phase 3 of the startup timings (once per VM, not again after a reboot), then
        `running`: from now on the VM may be assigned."""
        if self.container_start is not None and not self.state.get("container_metrics_posted"):
            end = time.time()
            metrics = {
                "container_start": self.container_start,
                "container_end": end,
                "container_startup_duration_seconds": round(end - self.container_start, 3),
            }
            if self.client.report_metrics(metrics):
                self.state.set("container_metrics_posted", True)
        if self.client.report_status("running"):
            log.info("reported running: waiting to be assigned")

    # -- assignment -----------------------------------------------------------------------

    def handle(self, answer: dict) -> None:
        """Run one assignment the listener handed over (unless it was handled already)."""
        command, pin = answer.get("command"), answer.get("pin")
        # A digest: the state file need not hold the researcher's code and PIN.
        key = hashlib.sha256(f"{command}\n{pin}".encode()).hexdigest()
        if key == self.state.get("handled_assignment"):
            # Already run (the listener answers an assigned VM at once): look again later
            # for a new command of the same researcher.
            self.stop.wait(self.settings.check_seconds)
            return
        self.state.set("handled_assignment", key)
        try:
            code = crd.extract_code(command)
            pin = crd.check_pin(pin)
        except crd.RefusedCommand as refused:
            log.error("assignment refused, start-host not run: %s", refused)
            self.client.report_status("error", f"assignment refused: {refused}")
            return
        log.info("assigned: starting Chrome Remote Desktop")
        result = crd.start_host(self.settings, code, pin)
        if result.ok:
            log.info("Chrome Remote Desktop started (%s)", result.detail)
            self.client.report_status("running")  # stored as 'assigned' while the VM is assigned
        else:
            log.error("Chrome Remote Desktop failed to start: %s", result.detail)
            self.client.report_status("error", "start-host failed: " + result.detail[:200])
        # assign_vm resets the row's in-use flag; health is worth a fresh look too.
        self.gpu.report_again()
        self.in_use.report_again()

    def wait_for_assignments(self) -> None:
        backoff = Backoff(self.settings.retry_min_seconds, self.settings.retry_max_seconds)
        while not self.stop.is_set():
            asked = time.monotonic()
            try:
                answer = self.client.wait_for_assignment()
            except OSError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                body = answer.body if isinstance(answer.body, dict) else {}
                if answer.status == 204:
                    backoff.reset()
                    # Never faster than one poll per retry_min_seconds, whatever the listener does.
                    self.stop.wait(self.settings.retry_min_seconds - (time.monotonic() - asked))
                    continue
                if answer.status == 200 and body.get("status") == "success":
                    backoff.reset()
                    self.handle(body)
                    continue
                problem = f"HTTP {answer.status} {body.get('message') or body.get('error') or ''}".strip()
            delay = backoff.next_delay()
            log.warning("listener: %s; polling again in %.1f s", problem, delay)
            self.stop.wait(delay)

    # -- whole life -------------------------------------------------------------------------

    def run(self) -> None:
        log.info("agent started for %s", self.settings.hostname)
        self.gpu.start()
        self.in_use.start()
        ready = False
        while not self.stop.is_set():
            try:
                if not ready:
                    self.wait_until_ready()
                    self.report_ready()
                    ready = True
                self.wait_for_assignments()
            except Exception:  # a bug must not end the agent: log it and carry on
                log.exception("agent loop failed; starting it again")
                self.stop.wait(self.settings.retry_max_seconds)
