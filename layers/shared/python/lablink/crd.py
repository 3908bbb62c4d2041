"""The researcher's Chrome Remote Desktop command, parsed and rebuilt.

Researchers paste the "start-host" command that remotedesktop.google.com gives them, e.g.

    DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Ab..." \\
        --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)

Only that command's parts are accepted; anything else (shell operators, other options,
several lines) is refused with a sentence the researcher can act on. What is stored is a
canonical command rebuilt from the parsed parts, never the text as pasted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_LENGTH = 1024  # the CrdCommand column
NAME_PLACEHOLDER = "$(hostname)"  # the client agent puts the VM's name here

_CODE_RE = re.compile(r"[A-Za-z0-9/_-]{1,512}")
_PROGRAM_RE = re.compile(r"(?:[A-Za-z0-9._-]*/)*start-host")
_DISPLAY_RE = re.compile(r"DISPLAY=([A-Za-z0-9:.]*)")
_URL_RE = re.compile(r"[A-Za-z0-9._~:/?#=%-]{1,512}")
_SHELL_OPERATORS = set(";|&`$<>(){}\\'\"\n\r\0")


class CrdCommandError(ValueError):
    """The command is not an acceptable start-host command; the message says why."""


@dataclass(frozen=True)
class CrdCommand:
    program: str
    code: str
    redirect_url: str | None
    display: str | None  # None: no DISPLAY= prefix given

    @property
    def canonical(self) -> str:
        parts = [] if self.display is None else [f"DISPLAY={self.display}"]
        parts += [self.program, f"--code={self.code}"]
        if self.redirect_url:
            parts.append(f"--redirect-url={shlex.quote(self.redirect_url)}")
        parts.append(f"--name={NAME_PLACEHOLDER}")
        return " ".join(parts)


def _operator_error() -> CrdCommandError:
    return CrdCommandError(
        "The CRD command may only hold the start-host command from remotedesktop.google.com; "
        "shell operators such as ; | & ` $( ) < > are not allowed."
    )


def parse_crd_command(text: str) -> CrdCommand:
    if not text or not text.strip():
        raise CrdCommandError("The CRD command is empty; paste the command from remotedesktop.google.com.")
    if len(text) > MAX_LENGTH:
        raise CrdCommandError(f"The CRD command is longer than {MAX_LENGTH} characters.")
    if any(c in text for c in "\n\r\0"):
        raise CrdCommandError("The CRD command must be a single line.")
    try:
        tokens = shlex.split(text)
    except ValueError:
        raise CrdCommandError("The CRD command has an unclosed quote.") from None

    display = None
    if tokens and (match := _DISPLAY_RE.fullmatch(tokens[0])):
        display = match[1]
        tokens = tokens[1:]
    elif tokens and tokens[0].startswith("DISPLAY="):
        raise CrdCommandError("The DISPLAY= value of the CRD command is not valid.")
    if not tokens or not _PROGRAM_RE.fullmatch(tokens[0]):
        raise CrdCommandError("The CRD command must run start-host (…/chrome-remote-desktop/start-host).")
    program, options = tokens[0], tokens[1:]

    values: dict[str, str] = {}
    for token in options:
        key, sep, value = token.partition("=")
        if key == "--name" and sep:
            pass  # replaced by the VM's own name, whatever was pasted
        elif key in ("--code", "--redirect-url") and sep:
            if any(c in _SHELL_OPERATORS for c in value):
                raise _operator_error()
        elif any(c in _SHELL_OPERATORS for c in token):
            raise _operator_error()
        else:
            raise CrdCommandError(f"The CRD command holds an unexpected part {token!r}; only --code, --redirect-url and --name are accepted.")
        if key in values:
            raise CrdCommandError(f"The CRD command gives {key} twice.")
        values[key] = value

    code = values.get("--code")
    if code is None:
        raise CrdCommandError("The CRD command must hold a --code= value.")
    if not _CODE_RE.fullmatch(code):
        raise CrdCommandError("The --code= value may only hold letters, digits, / _ and -.")
    redirect_url = values.get("--redirect-url")
    if redirect_url is not None:
        parts = urlsplit(redirect_url) if _URL_RE.fullmatch(redirect_url) else None
        if parts is None or parts.scheme != "https" or not parts.netloc:
            raise CrdCommandError("The --redirect-url= value must be a plain https:// URL.")
    return CrdCommand(program=program, code=code, redirect_url=redirect_url, display=display)
