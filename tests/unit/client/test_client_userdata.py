"""Rendering of the client VM's user data: configs, quoting, size, syntax."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import io
import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from lablink import userdata
from lablink.config import LablinkConfig, parse_config
from lablink.userdata import USER_DATA_LIMIT, UserDataError, render_user_data, user_data_script

HOSTNAME = "lablink-vm-dev-7"
TOKEN = "tok_" + "A1b2-" * 8
API_URL = "https://abc123.execute-api.us-west-2.amazonaws.com/prod"
LISTENER_URL = "http://internal-lablink-listener-123.us-west-2.elb.amazonaws.com"
VALUE_NAMES = [
    "LABLINK_HOSTNAME",
    "LABLINK_TOKEN",
    "LABLINK_API_URL",
    "LABLINK_LISTENER_URL",
    "LABLINK_SOFTWARE",
    "LABLINK_IMAGE",
    "LABLINK_REPOSITORY",
    "LABLINK_REGION",
    "LABLINK_LOG_GROUP",
    "LABLINK_STARTUP_ON_ERROR",
    "LABLINK_AGENT_SETTINGS",
    "LABLINK_CLOUDWATCH_CONFIG",
    "LABLINK_AGENT",
    "LABLINK_STARTUP_SCRIPT",
]


def render(config: LablinkConfig | None = None, **overrides) -> str | bytes:
    values = {"hostname": HOSTNAME, "token": TOKEN, "api_url": API_URL, "listener_url": LISTENER_URL, **overrides}
    return render_user_data(config or LablinkConfig(), **values)


def bash_syntax_ok(script: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def values_as_bash_sees_them(script: str, tmp_path: Path) -> dict[str, str]:
    """Run the script up to the end of its values block (nothing after it) and read back
    every value bash holds, NUL-separated."""
    head = script[: script.index("\nROOT=")]
    out = tmp_path / "values"
    dump = "".join(f'printf "%s\\0" "${name}" >>{out}\n' for name in VALUE_NAMES)
    run = subprocess.run(["bash", "-c", head + "\n" + dump], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    return dict(zip(VALUE_NAMES, out.read_bytes().decode().split("\0")[:-1], strict=True))


def decode(blob: str) -> bytes:
    return gzip.decompress(__import__("base64").b64decode(blob))


def test_the_default_config_renders_a_plain_script_under_the_limit(tmp_path):
    script = render()
    assert isinstance(script, str) and script.startswith("#!/bin/bash\n")
    assert len(script.encode()) <= USER_DATA_LIMIT
    bash_syntax_ok(script, tmp_path)
    values = values_as_bash_sees_them(script, tmp_path)
    assert values["LABLINK_HOSTNAME"] == HOSTNAME
    assert values["LABLINK_TOKEN"] == TOKEN
    assert values["LABLINK_IMAGE"] == LablinkConfig().machine.image
    assert values["LABLINK_LOG_GROUP"] == "/lablink/dev/client"
    assert values["LABLINK_STARTUP_SCRIPT"] == ""
    assert __import__("json").loads(values["LABLINK_AGENT_SETTINGS"]) == {
        "hostname": HOSTNAME,
        "token": TOKEN,
        "api_url": API_URL,
        "listener_url": LISTENER_URL,
        "software": "sleap",
    }


def test_no_repository_means_none_never_the_string_none(tmp_path):
    for repository in (None, ""):
        script = render(parse_config({"machine": {"repository": repository}}))
        assert values_as_bash_sees_them(script, tmp_path)["LABLINK_REPOSITORY"] == ""
        assert "None" not in script
        (tmp_path / "values").unlink()


def test_a_repository_is_passed_as_is(tmp_path):
    repo = "https://github.com/talmolab/sleap-tutorial-data.git"
    script = render(parse_config({"machine": {"repository": repo}}))
    assert values_as_bash_sees_them(script, tmp_path)["LABLINK_REPOSITORY"] == repo


INJECTIONS = [
    "$(touch {marker})",
    "`touch {marker}`",
    '"; touch {marker}; echo "',
    "'; touch {marker}; echo '",
    "x\ntouch {marker}\n",
    "${{IFS}}$(touch${{IFS}}{marker})",
    "\\'; touch {marker} #",
]


@pytest.mark.parametrize("injection", INJECTIONS)
def test_injected_values_stay_inert_text(tmp_path, injection):
    marker = tmp_path / "pwned"
    text = injection.format(marker=marker)
    config = parse_config({"machine": {"software": "sleap" + text, "repository": "https://h/r.git" + text}})
    script = user_data_script(render(config))  # long values take it over EC2's limit: gzip-compressed
    bash_syntax_ok(script, tmp_path)
    values = values_as_bash_sees_them(script, tmp_path)
    assert values["LABLINK_SOFTWARE"] == "sleap" + text
    assert values["LABLINK_REPOSITORY"] == "https://h/r.git" + text
    assert not marker.exists()


def test_a_startup_script_with_special_characters_arrives_byte_for_byte(tmp_path):
    content = (
        "#!/bin/bash\nset -e\necho \"$HOME\" '$(not run)' `date` ${PATH}\n"
        "cat <<EOF\nheredoc $VAR\nEOF\necho 'ünïcödé ✓'\nprintf '%s\\n' \"a\\tb\"\n"
    ).encode()
    path = tmp_path / "custom-startup.sh"
    path.write_bytes(content)
    config = parse_config({"startup_script": {"path": str(path), "on_error": "fail"}})
    script = render(config)
    bash_syntax_ok(script, tmp_path)
    values = values_as_bash_sees_them(script, tmp_path)
    assert decode(values["LABLINK_STARTUP_SCRIPT"]) == content
    assert values["LABLINK_STARTUP_ON_ERROR"] == "fail"


def _long_startup_script(lines: int) -> str:
    steps = [
        "apt-get install -y --no-install-recommends {pkg}",
        "pip install '{pkg}==1.{n}.0'",
        'echo "step {n}: {pkg} ready" >> /var/log/setup.log',
        "mkdir -p /data/{pkg}/{n} && chown client /data/{pkg}/{n}",
    ]
    packages = ["numpy", "scipy", "opencv-python", "tensorflow", "sleap", "h5py", "imageio", "pandas", "jupyterlab"]
    rng = random.Random(7)
    return (
        "#!/bin/bash\nset -euo pipefail\n"
        + "\n".join(rng.choice(steps).format(pkg=rng.choice(packages), n=n) for n in range(lines))
        + "\n"
    )


def test_a_long_startup_script_is_compressed_under_the_limit(tmp_path):
    content = _long_startup_script(800)
    assert len(content) > 2 * USER_DATA_LIMIT
    path = tmp_path / "long.sh"
    path.write_text(content)
    data = render(parse_config({"startup_script": {"path": str(path)}}))
    assert isinstance(data, bytes) and data[:2] == b"\x1f\x8b"  # gzip, as cloud-init recognizes it
    assert len(data) <= USER_DATA_LIMIT
    script = user_data_script(data)
    bash_syntax_ok(script, tmp_path)
    assert decode(values_as_bash_sees_them(script, tmp_path)["LABLINK_STARTUP_SCRIPT"]).decode() == content


def test_a_startup_script_too_big_even_compressed_is_refused(tmp_path):
    path = tmp_path / "huge.sh"
    path.write_bytes(os.urandom(20_000))  # incompressible
    with pytest.raises(UserDataError, match="even compressed"):
        render(parse_config({"startup_script": {"path": str(path)}}))


def test_a_missing_startup_script_is_a_clear_error(tmp_path):
    with pytest.raises(UserDataError, match="startup_script.path: cannot read"):
        render(parse_config({"startup_script": {"path": str(tmp_path / "nowhere.sh")}}))


@pytest.mark.parametrize(
    ("overrides", "config", "message"),
    [
        ({"hostname": "Bad Host"}, {}, "invalid hostname"),
        ({"hostname": "x; rm -rf /"}, {}, "invalid hostname"),
        ({"token": "short"}, {}, "token"),
        ({"token": "a" * 30 + "$(id)"}, {}, "token"),
        ({"api_url": "ftp://x"}, {}, "api_url"),
        ({"api_url": "https://x/ $(id)"}, {}, "api_url"),
        ({"listener_url": "not a url"}, {}, "listener_url"),
        ({}, {"machine": {"image": "repo/image; rm -rf /"}}, "machine.image"),
        ({}, {"machine": {"image": "--privileged"}}, "machine.image"),
        ({}, {"machine": {"software": "  "}}, "machine.software"),
        ({}, {"machine": {"software": "sl\0eap"}}, "NUL"),
    ],
)
def test_values_that_cannot_be_shipped_are_refused(overrides, config, message):
    with pytest.raises(UserDataError, match=message):
        render(parse_config(config), **overrides)


def test_rendering_is_reproducible():
    assert render() == render()


def test_the_packed_agent_runs_with_a_plain_python3(tmp_path):
    with tarfile.open(fileobj=io.BytesIO(userdata.agent_archive())) as archive:
        archive.extractall(tmp_path / "agent", filter="data")
    # The AMI's python3 may be as old as 3.8 (Ubuntu 20.04): its grammar, at least.
    for source in (tmp_path / "agent").rglob("*.py"):
        ast.parse(source.read_text(), filename=str(source), feature_version=(3, 8))
    shown = subprocess.run(
        ["python3", "-I", str(tmp_path / "agent"), "--settings", "x", "report-status", "--help"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shown.returncode == 0, shown.stderr
    assert "initializing" in shown.stdout


def test_a_layer_bundle_uses_the_copy_beside_the_package(tmp_path):
    """In the Lambda layer the client files sit in lablink/client_files/; the renderer
    must find them there (and not fall back to a source tree that is not deployed)."""
    package = tmp_path / "python" / "lablink"
    package.mkdir(parents=True)
    shutil.copy(userdata.__file__, package / "userdata.py")
    shutil.copytree(userdata.client_dir(), package / "client_files", ignore=shutil.ignore_patterns("__pycache__"))
    template = package / "client_files" / "user-data.sh.tmpl"
    template.write_text(template.read_text().replace("#!/bin/bash\n", "#!/bin/bash\n# bundled copy\n", 1))
    spec = importlib.util.spec_from_file_location("bundled_userdata", package / "userdata.py")
    bundled = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundled)
    script = bundled.render_user_data(
        LablinkConfig(), hostname=HOSTNAME, token=TOKEN, api_url=API_URL, listener_url=LISTENER_URL
    )
    assert bundled.client_dir() == package / "client_files"
    assert "# bundled copy" in script


def _statement(script: str, start: str) -> str:
    """The script's statement that begins with ``start``, its continuation lines joined."""
    lines = script[script.index("\n" + start) + 1 :].splitlines()
    statement = []
    for line in lines:
        statement.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            return " ".join(statement)
    raise AssertionError(f"unterminated statement {start!r}")


def test_the_container_gets_dockers_bridge_and_nothing_of_lablinks():
    script = render()
    run = _statement(script, "docker run ")
    assert "--network" not in run and "--net " not in run and "--net=" not in run
    # No environment at all: the token (and the URLs it opens) stay with the host agent.
    assert " -e " not in run and "--env" not in run and "LABLINK_TOKEN" not in run
    assert "export LABLINK_TOKEN" not in script and "-e LABLINK_TOKEN" not in script
    assert '--hostname "$LABLINK_HOSTNAME"' in run


def test_the_metadata_guard_is_in_place_before_the_container_and_at_every_boot():
    script = render()
    assert 'METADATA_RULE="DOCKER-USER --destination 169.254.169.254/32 --jump DROP"' in script
    unit = script[script.index("<<GUARD\n") : script.index("\nGUARD\n")]
    assert "ExecStart=/bin/sh -c 'iptables -C $METADATA_RULE 2>/dev/null || iptables -I $METADATA_RULE'" in unit
    for line in ("Type=oneshot", "After=docker.service", "PartOf=docker.service", "WantedBy=multi-user.target"):
        assert line in unit.splitlines()
    assert script.index('systemctl enable --now "$METADATA_GUARD"') < script.index("\ndocker run ")


def test_the_agent_settings_file_is_made_root_only():
    script = render()
    assert "\numask 077\n" in script
    written = script.index('printf \'%s\\n\' "$LABLINK_AGENT_SETTINGS" >"$SETTINGS"\n')
    assert script.index('chmod 600 "$SETTINGS"') > written
