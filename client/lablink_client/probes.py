"""What the agent watches on the host: the GPU (nvidia-smi) and whether the subject
software runs (processes of the researcher's container are visible in the host's /proc)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

HEALTHY, UNHEALTHY, NOT_APPLICABLE = "Healthy", "Unhealthy", "N/A"


def gpu_status(timeout: float = 30.0) -> str:
    """Healthy when nvidia-smi succeeds, N/A when there is none, Unhealthy otherwise."""
    try:
        done = subprocess.run(["nvidia-smi"], capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return NOT_APPLICABLE
    except (subprocess.TimeoutExpired, OSError):
        return UNHEALTHY
    if done.returncode == 0:
        return HEALTHY
    return NOT_APPLICABLE if done.returncode == 127 else UNHEALTHY


def _names(argv: list[str], comm: str) -> Iterator[str]:
    """The names a process goes by: its kernel name, its program, and for an interpreter
    the script or module it runs (``python3 /usr/bin/sleap-label``, ``python -m sleap``)."""
    yield comm
    if not argv:
        return
    program = os.path.basename(argv[0])
    yield program
    if program.startswith(("python", "bash", "sh", "perl", "node")):
        args = iter(argv[1:])
        for arg in args:
            if arg == "-m":
                yield next(args, "").split(".")[0]
                return
            if not arg.startswith("-"):
                yield os.path.basename(arg)
                return


def is_software(name: str, software: str) -> bool:
    """``sleap`` is named by ``sleap``, ``sleap-label``, ``sleap_train``, ``sleap.exe``; not by ``sleapy``."""
    return name == software or (name.startswith(software) and name[len(software)] in "-_.")


def software_running(software: str, proc: str = "/proc") -> bool:
    me = os.getpid()
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
            with open(os.path.join(proc, entry, "comm"), "rb") as handle:
                comm = handle.read().decode(errors="replace").strip()
        except OSError:  # the process ended meanwhile
            continue
        if any(is_software(name, software) for name in _names(argv, comm)):
            return True
    return False
