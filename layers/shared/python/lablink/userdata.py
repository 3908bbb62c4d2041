"""Per-VM user data, rendered by the provisioning step: client/user-data.sh.tmpl with this
VM's values, and the client agent (client/lablink_client/) packed inside.

Values are inserted only as shell-quoted assignments at one marker line; the template's own
text never holds a value, so no config value can break or inject into the script. EC2 takes
at most 16 KB of user data: a script over that is shipped gzip-compressed (cloud-init
recognizes gzip and unpacks it).
"""

from __future__ import annotations

import ast
import base64
import functools
import gzip
import io
import json
import re
import shlex
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

from lablink.config import LablinkConfig
from lablink.models import is_valid_hostname
from lablink.tokens import log_stream_name

USER_DATA_LIMIT = 16 * 1024  # bytes, EC2's limit on the raw user data
TEMPLATE_NAME = "user-data.sh.tmpl"
AGENT_PACKAGE = "lablink_client"
VALUES_MARKER = "#@LABLINK_VALUES@"

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")
# A Docker image reference: registry/path:tag or @digest, no spaces or shell characters.
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_PRINTABLE_RE = re.compile(r"[!-~]+")


class UserDataError(ValueError):
    """The user data cannot be rendered from these values; the message says which."""


def client_dir() -> Path:
    """client/ of the source tree, or the copy bundled beside this package in a Lambda layer
    (lablink/client_files/ holding user-data.sh.tmpl and lablink_client/*.py)."""
    bundled = Path(__file__).with_name("client_files")
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[4] / "client"


def client_log_group(config: LablinkConfig) -> str:
    """The CloudWatch log group of the client VMs (one stream per VM: lablink.tokens.log_stream_name)."""
    return f"/lablink/{config.app.environment}/client"


def _without_docs(source: str) -> str:
    """The source without comments and docstrings (they stay in the repository): the agent
    must fit in the user data beside everything else."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


def agent_archive(directory: Path | None = None) -> bytes:
    """The client agent as a reproducible .tar.gz of a runnable directory
    (`python3 <dir> --settings FILE run`): __main__.py and lablink_client/*.py. Built once
    per process: a launch renders it into every VM's user data."""
    return _agent_archive(directory or client_dir())


@functools.lru_cache(maxsize=4)
def _agent_archive(directory: Path) -> bytes:
    package = directory / AGENT_PACKAGE
    sources = sorted(package.glob("*.py"))
    if not sources:
        raise UserDataError(f"the client agent is missing: no {AGENT_PACKAGE}/*.py in {package.parent}")
    entries = [(f"{AGENT_PACKAGE}/{path.name}", _without_docs(path.read_text(encoding="utf-8"))) for path in sources]
    entries.append(("__main__.py", f"from {AGENT_PACKAGE}.cli import main\nraise SystemExit(main())\n"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, text in entries:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not _PRINTABLE_RE.fullmatch(url):
        raise UserDataError(f"{name} must be an http(s) URL without spaces, got {url!r}")
    return url


def _startup_script(config: LablinkConfig) -> bytes:
    if not config.startup_script.path:
        return b""
    path = Path(config.startup_script.path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserDataError(f"startup_script.path: cannot read {path} ({error.strerror})") from None


def _packed(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode() if data else ""


def _values_block(values: dict[str, str]) -> str:
    lines = []
    for name, value in values.items():
        if "\0" in value:
            raise UserDataError(f"{name} holds a NUL character")
        lines.append(f"{name}={shlex.quote(value)}")
    return "\n".join(lines)


def _cloudwatch_config(log_group: str, log_stream: str) -> str:
    files = ["/var/log/cloud-init-output.log", "/var/log/lablink/agent.log"]
    collect = [{"file_path": path, "log_group_name": log_group, "log_stream_name": log_stream} for path in files]
    return json.dumps({"logs": {"logs_collected": {"files": {"collect_list": collect}}}})


def user_data_script(user_data: str | bytes) -> str:
    """The script a VM runs for this user data (cloud-init unpacks gzip the same way)."""
    return gzip.decompress(user_data).decode() if isinstance(user_data, bytes) else user_data


def render_user_data(
    config: LablinkConfig, *, hostname: str, token: str, api_url: str, listener_url: str
) -> str | bytes:
    """The user data of one client VM: the script as text, or gzip-compressed bytes when the
    text is over EC2's limit (RunInstances takes either; cloud-init unpacks gzip). Raises UserDataError for values that cannot be
    shipped (an invalid hostname, token, URL or image; an unreadable startup script; too
    large even compressed)."""
    if not is_valid_hostname(hostname):
        raise UserDataError(f"invalid hostname {hostname!r}")
    if not _TOKEN_RE.fullmatch(token):
        raise UserDataError("the VM token must be 16 to 256 URL-safe characters")
    machine = config.machine
    if not _IMAGE_RE.fullmatch(machine.image):
        raise UserDataError(f"machine.image is not a Docker image reference: {machine.image!r}")
    if not machine.software.strip():
        raise UserDataError("machine.software must name the subject software")
    directory = client_dir()
    try:
        template = (directory / TEMPLATE_NAME).read_text(encoding="utf-8")
    except OSError as error:
        raise UserDataError(
            f"the user-data template is missing: {directory / TEMPLATE_NAME} ({error.strerror})"
        ) from None
    if template.count(VALUES_MARKER) != 1:
        raise UserDataError(f"{TEMPLATE_NAME} must hold the line {VALUES_MARKER} exactly once")

    log_group = client_log_group(config)
    settings = {
        "hostname": hostname,
        "token": token,
        "api_url": _check_url("api_url", api_url),
        "listener_url": _check_url("listener_url", listener_url),
        "software": machine.software,
    }
    values = {
        "LABLINK_HOSTNAME": hostname,
        "LABLINK_TOKEN": token,
        "LABLINK_API_URL": api_url,
        "LABLINK_LISTENER_URL": listener_url,
        "LABLINK_SOFTWARE": machine.software,
        "LABLINK_IMAGE": machine.image,
        "LABLINK_REPOSITORY": machine.repository or "",
        "LABLINK_REGION": config.app.region,
        "LABLINK_LOG_GROUP": log_group,
        "LABLINK_STARTUP_ON_ERROR": config.startup_script.on_error,
        "LABLINK_AGENT_SETTINGS": json.dumps(settings),
        # The VM's own stream: the log processor keeps only what it finds there (lablink/logs.py).
        "LABLINK_CLOUDWATCH_CONFIG": _cloudwatch_config(log_group, log_stream_name(hostname, token)),
        "LABLINK_AGENT": base64.b64encode(agent_archive(directory)).decode(),
        "LABLINK_STARTUP_SCRIPT": _packed(_startup_script(config)),
    }
    script = template.replace(VALUES_MARKER, _values_block(values))
    if len(script.encode()) <= USER_DATA_LIMIT:
        return script
    packed = gzip.compress(script.encode(), compresslevel=9, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise UserDataError(
            f"the user data is {len(packed)} bytes even compressed, over EC2's limit of "
            f"{USER_DATA_LIMIT}: shorten the custom startup script"
        )
    return packed
