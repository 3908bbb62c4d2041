"""Chrome Remote Desktop: the researcher's command checked again here, then start-host run
with an argv list (never a shell) and the PIN fed twice on stdin.

CRD 148+ registers the host (writes ~/.config/chrome-remote-desktop/host#<md5 of the
hostname>.json) and then asks systemd to start the host daemon; a container has no systemd,
so start-host exits non-zero although the registration succeeded. A new or rewritten host
config therefore counts as registered, and the daemon is started here with the command of
CRD's own systemd unit (chrome-remote-desktop --start --new-session, which detaches)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from lablink_client.settings import Settings

REDIRECT_URL = "https://remotedesktop.google.com/_/oauthredirect"
# The alphabet of CRD authorization codes (e.g. "4/0AbCd..."); the API allows no more.
CODE_RE = re.compile(r"[A-Za-z0-9/_-]{1,512}")
PIN_RE = re.compile(r"[0-9]{6,12}")


class RefusedCommand(ValueError):
    """The assignment cannot be run safely; the message says why (and holds no secret)."""


def extract_code(command: object) -> str:
    """The --code value of a start-host command, or RefusedCommand. Only this value is taken
    from the researcher's text: every other argument is built here."""
    if not isinstance(command, str):
        raise RefusedCommand("the command is not text")
    values = [token[len("--code=") :] for token in command.split() if token.startswith("--code=")]
    if len(values) != 1:
        raise RefusedCommand(f"the command holds {len(values)} --code= values, expected exactly one")
    code = values[0]
    if len(code) >= 2 and code[0] == code[-1] and code[0] in "\"'":
        code = code[1:-1]
    if not CODE_RE.fullmatch(code):
        raise RefusedCommand("the --code value holds characters outside [A-Za-z0-9/_-]")
    return code


def check_pin(pin: object) -> str:
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise RefusedCommand("the PIN is not 6 to 12 digits")
    return pin


def start_host_argv(launcher: Sequence[str], code: str, hostname: str) -> list[str]:
    return [*launcher, f"--code={code}", f"--redirect-url={REDIRECT_URL}", f"--name={hostname}"]


@dataclass(frozen=True)
class CrdResult:
    ok: bool
    detail: str  # exit status and the tail of the output, the code masked


def host_configs(command: Sequence[str], timeout: float) -> frozenset[str]:
    """The host configs listed now; none when the listing fails (e.g. no config directory yet)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line for line in done.stdout.splitlines() if line.strip())


def _run(argv: Sequence[str], timeout: float, stdin: str | None, secrets: Sequence[str]) -> CrdResult:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return CrdResult(False, f"{argv[0]} not found")
    except subprocess.TimeoutExpired:
        return CrdResult(False, f"{argv[0]} did not finish within {timeout:g} s")
    output = done.stdout + done.stderr
    for secret in secrets:
        output = output.replace(secret, "<secret>")
    return CrdResult(done.returncode == 0, f"exit status {done.returncode}; output: {output.strip()[-1500:]}")


def start_host(settings: Settings, code: str, pin: str) -> CrdResult:
    """Register the host; when start-host fails yet left a new host config (CRD 148+ in a
    container), start the daemon ourselves. Failure only when nothing was registered or the
    daemon would not start."""
    timeout = settings.crd_timeout_seconds
    before = host_configs(settings.crd_host_configs_command, timeout)
    argv = start_host_argv(settings.crd_launcher, code, settings.hostname)
    registration = _run(argv, timeout, f"{pin}\n{pin}\n", secrets=(code, pin))
    if registration.ok or not host_configs(settings.crd_host_configs_command, timeout) - before:
        return registration
    daemon = _run(settings.crd_daemon_command, timeout, None, secrets=(code, pin))
    outcome = "host daemon started" if daemon.ok else "host daemon failed to start"
    return CrdResult(daemon.ok, f"start-host {registration.detail}; host registered anyway, {outcome}: {daemon.detail}")
