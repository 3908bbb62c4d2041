"""The configuration file: defaults, strict keys, clear messages, and the validate command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lablink.config import ConfigError, LablinkConfig, load_config, load_config_file, parse_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lablink.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_original_names():
    config = LablinkConfig()
    assert (config.db.table_name, config.db.message_channel) == ("vms", "vm_updates")
    assert config.machine.repository is None
    assert config.app.environment == "dev"
    assert config.listener.heartbeat_seconds == 20


def test_a_full_file_is_read(tmp_path):
    path = _write(
        tmp_path,
        """
db: {table_name: lab_vms, message_channel: lab_updates}
machine: {machine_type: g5.xlarge, ami_id: ami-123, image: ghcr.io/x/y:1, repository: https://github.com/x/tutorial.git, software: sleap, extension: slp}
app: {environment: workshop-1, region: eu-west-1}
fleet: {max_launch_per_request: 100, max_vms: 300}
""",
    )
    config = load_config_file(path)
    assert config.db.table_name == "lab_vms"
    assert config.machine.repository == "https://github.com/x/tutorial.git"
    assert config.app.region == "eu-west-1"
    assert config.fleet.max_vms == 300


def test_an_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config_file(_write(tmp_path, "db:\n  tabel_name: vms\n"))
    assert error.value.reasons == ["db.tabel_name: unknown key"]


def test_an_unknown_section_is_named():
    with pytest.raises(ConfigError) as error:
        parse_config({"dns": {"enabled": True}})
    assert error.value.reasons == ["dns: unknown key"]


@pytest.mark.parametrize(
    "data, where",
    [
        ({"app": {"environment": "Prod Env"}}, "app.environment"),
        ({"fleet": {"max_launch_per_request": 0}}, "fleet.max_launch_per_request"),
        ({"fleet": {"max_launch_per_request": 501}}, "fleet.max_launch_per_request"),
        ({"startup_script": {"on_error": "ignore"}}, "startup_script.on_error"),
        ({"db": {"table_name": ""}}, "db.table_name"),
    ],
)
def test_bad_values_are_refused_with_their_place(data, where):
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert error.value.reasons[0].startswith(where + ":")


def test_empty_repository_means_none():
    assert parse_config({"machine": {"repository": ""}}).machine.repository is None


def test_not_yaml_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(_write(tmp_path, "db: [unclosed"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_environment_json_is_read_by_functions(monkeypatch):
    monkeypatch.setenv("LABLINK_CONFIG_JSON", json.dumps({"db": {"table_name": "from_env"}}))
    assert load_config().db.table_name == "from_env"


def _validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lablink_cli", "validate-config", str(path)], capture_output=True, text=True)


def test_validate_config_passes_and_fails_with_reasons(tmp_path):
    good = _validate(_write(tmp_path, "app: {environment: lab}\n"))
    assert good.returncode == 0 and good.stdout.startswith("[PASS]")
    bad = _validate(_write(tmp_path, "app: {environment: lab, colour: blue}\nfleet: {max_vms: -1}\n"))
    assert bad.returncode == 1
    assert bad.stdout.startswith("[FAIL]")
    assert "app.colour: unknown key" in bad.stdout
    assert "fleet.max_vms:" in bad.stdout
