"""Chrome Remote Desktop: the researcher's command checked again here, then start-host run
with an argv list (never a shell) and the PIN fed twice on stdin."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

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


def start_host(launcher: Sequence[str], code: str, hostname: str, pin: str, timeout: float) -> CrdResult:
    argv = start_host_argv(launcher, code, hostname)
    try:
        done = subprocess.run(
            argv,
            input=f"{pin}\n{pin}\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CrdResult(False, f"{argv[0]} not found")
    except subprocess.TimeoutExpired:
        return CrdResult(False, f"start-host did not finish within {timeout:g} s")
    output = (done.stdout + done.stderr).replace(code, "<code>").replace(pin, "<pin>").strip()
    return CrdResult(done.returncode == 0, f"exit status {done.returncode}; output: {output[-1500:]}")
