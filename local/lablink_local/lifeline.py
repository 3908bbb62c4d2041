"""The processes `lablink local` starts stop when it dies, by any signal, kill -9 included.

Two mechanisms, because neither covers every process alone:

- ``die_with_parent``, a ``preexec_fn``: Linux's parent-death signal (prctl PR_SET_PDEATHSIG)
  sends the child SIGTERM when its parent dies. Linux counts the *thread* that forked the child
  as its parent (prctl(2)), so it suits children started from the main thread only (the
  listener, PgBouncer); and it is not inherited by grandchildren (pg_ctl's postmaster).
- ``Watchdog``, a small process of its own session that the stack tells which processes are
  its own (``guard``): the simulated VMs' agents (forked by their boot threads), the postmaster
  pg_ctl leaves behind, the listener's and PgBouncer's process groups. When the stack's pipe to
  it closes without the word "done" (the stack died), it signals every one still running,
  SIGKILLs what has not ended within ``GRACE_SECONDS``, then removes their throwaway folders
  (the database cluster, PgBouncer's configuration).

A process is identified by its pid and its start time (/proc/PID/stat), so a pid the kernel
has reused since is never signalled. Without a watchdog running (the tests and benchmarks
that run a LocalStack in their own process) ``guard`` does nothing.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
GRACE_SECONDS = 5.0
DONE = "done"

# Looked up before any fork: a preexec_fn runs between fork and exec, where loading a library
# in a threaded process could deadlock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(parent_pid: int):
    """A ``preexec_fn``: SIGTERM to the child when the thread that starts it ends (start it from
    the main thread). ``parent_pid``: the starting process, read before the fork."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was set
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _start_time(pid: int) -> str | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22, starttime


class Watchdog:
    """The stack's side: ``start()`` runs the watchdog process, ``guard`` registers a process,
    ``stop()`` tells it the stack ended cleanly."""

    _current: Watchdog | None = None

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> Watchdog:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "lablink_local.lifeline"],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C at the terminal is for the stack, which then stops cleanly
        )
        Watchdog._current = self
        return self

    def _send(self, line: str) -> None:
        with self._lock:
            if self._process is not None and self._process.stdin is not None:
                try:
                    self._process.stdin.write(line + "\n")
                    self._process.stdin.flush()
                except BrokenPipeError:  # the watchdog is gone: the stack itself runs on
                    self._process.stdin = None

    def stop(self) -> None:
        if self._process is None:
            return
        self._send(DONE)
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(10)
        self._process = None
        Watchdog._current = None


def guard(pid: int, signal_number: int = signal.SIGTERM, *, group: bool = False, files: Path | None = None) -> None:
    """Have the running watchdog send ``signal_number`` to process ``pid`` (to its process group
    with ``group``) if the stack dies, and then remove the process's ``files`` (a throwaway
    folder); nothing when no watchdog runs."""
    if Watchdog._current is not None:
        Watchdog._current._send(f"{int(signal_number)} {pid} {int(group)} {files or ''}".rstrip())


# -- the watchdog process ----------------------------------------------------------------------


def _signal(pid: int, started: str, group: bool, signal_number: int) -> bool:
    """Send the signal if the process still runs (the same one); True when it was sent."""
    if _start_time(pid) != started:
        return False
    try:
        if group:
            os.killpg(pid, signal_number)
        else:
            os.kill(pid, signal_number)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def watch(lines) -> None:
    guarded: list[tuple[int, int, str, bool]] = []  # (signal, pid, start time, group)
    folders: list[str] = []
    for line in lines:
        if line.strip() == DONE:
            return
        signal_number, pid, group, *files = line.rstrip("\n").split(" ", 3)
        started = _start_time(int(pid))
        if started is not None:
            guarded.append((int(signal_number), int(pid), started, group == "1"))
            folders += files
    # The pipe closed without "done": the stack died. The agents first, the database last.
    alive = [entry for entry in reversed(guarded) if _signal(entry[1], entry[2], entry[3], entry[0])]
    deadline = time.monotonic() + GRACE_SECONDS
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [entry for entry in alive if _start_time(entry[1]) == entry[2]]
    for _, pid, started, group in alive:
        _signal(pid, started, group, signal.SIGKILL)
    time.sleep(0.2 if alive else 0)  # SIGKILL is not waited for
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.stdin)
