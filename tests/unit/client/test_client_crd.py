"""The VM's own check of the researcher's command, start-host run as an argv list, and
CRD 148+ in a container: registered although start-host exits non-zero (no systemd)."""

from __future__ import annotations

import os

import pytest
from client_fakes import FakeHost

from lablink_client import crd
from lablink_client.settings import Settings

CODE = "4/0AbCdEf-gh_IJ/kl"
CANONICAL = (
    f"DISPLAY= /opt/google/chrome-remote-desktop/start-host --code={CODE} "
    "--redirect-url=https://remotedesktop.google.com/_/oauthredirect --name=$(hostname)"
)


def test_the_code_is_taken_from_the_canonical_command():
    assert crd.extract_code(CANONICAL) == CODE


def test_a_quoted_code_is_accepted():
    assert crd.extract_code(f'start-host --code="{CODE}"') == CODE


@pytest.mark.parametrize(
    "command",
    [
        "start-host --code=abc;touch${IFS}/tmp/pwned",
        "start-host --code=abc$(touch /tmp/pwned)",
        "start-host --code=abc`id`",
        "start-host --code='abc' --code=def",
        "start-host --name=x",
        "start-host --code=",
        "start-host --code=abc|sh",
        'start-host --code="abc',
        "start-host --code=" + "a" * 513,
    ],
)
def test_anything_but_one_safe_code_is_refused(command):
    with pytest.raises(crd.RefusedCommand):
        crd.extract_code(command)


@pytest.mark.parametrize("pin", ["12345", "12345a", "123456\n654321", None, 123456])
def test_a_pin_must_be_digits(pin):
    with pytest.raises(crd.RefusedCommand):
        crd.check_pin(pin)


@pytest.fixture
def host(tmp_path, monkeypatch) -> FakeHost:
    host = FakeHost(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{host.bin}{os.pathsep}{os.environ['PATH']}")
    return host


def settings(host: FakeHost, hostname: str = "lablink-vm-dev-1", **overrides) -> Settings:
    return Settings(
        hostname=hostname,
        token="t" * 32,
        api_url="http://api",
        listener_url="http://listener",
        software="sleap",
        **{**host.crd_settings(), "crd_timeout_seconds": 30, **overrides},
    )


def test_start_host_gets_the_argv_and_the_pin_twice(host):
    host.start_host_registers()
    result = crd.start_host(settings(host), CODE, "123456")
    assert result.ok, result.detail
    assert host.start_host_calls() == [
        {
            "argv": [
                f"--code={CODE}",
                "--redirect-url=https://remotedesktop.google.com/_/oauthredirect",
                "--name=lablink-vm-dev-1",
            ],
            "stdin": "123456\n123456\n",
        }
    ]
    # start-host started the daemon itself (CRD before 148, or with systemd): not again.
    assert host.host_daemon_calls() == []


def test_a_registered_host_whose_start_host_failed_gets_its_daemon_started(host):
    host.start_host_registers()
    host.start_host_exits(1)  # CRD 148: "System has not been booted with systemd"
    result = crd.start_host(settings(host), CODE, "123456")
    assert result.ok, result.detail
    assert len(host.host_configs()) == 1
    assert [call["argv"] for call in host.host_daemon_calls()] == [["--start", "--new-session"]]
    assert "exit status 1" in result.detail and "host daemon started" in result.detail


def test_a_failing_start_host_that_registered_nothing_is_a_failure(host):
    host.start_host_exits(1)
    result = crd.start_host(settings(host), CODE, "123456")
    assert not result.ok
    assert "exit status 1" in result.detail
    assert host.host_configs() == [] and host.host_daemon_calls() == []


def test_a_host_config_left_by_an_earlier_assignment_is_not_a_registration(host):
    host.start_host_registers()
    assert crd.start_host(settings(host), "first-code", "123456").ok
    (host.bin / "start-host.registers").unlink()
    host.start_host_exits(1)  # e.g. the new code expired: the old config stays as it was
    result = crd.start_host(settings(host), "second-code", "123456")
    assert not result.ok
    assert host.host_daemon_calls() == []


def test_a_daemon_that_will_not_start_is_a_failure(host):
    host.start_host_registers()
    host.start_host_exits(1)
    host.host_daemon_exits(2)
    result = crd.start_host(settings(host), CODE, "123456")
    assert not result.ok
    assert "host daemon failed to start" in result.detail and "exit status 2" in result.detail


def test_a_failing_start_host_is_a_failure_with_its_status_and_no_secret(host, tmp_path):
    script = tmp_path / "noisy-start-host"
    script.write_text('#!/bin/bash\necho "bad code $1 pin $(cat)"\nexit 3\n')
    script.chmod(0o755)
    result = crd.start_host(settings(host, crd_launcher=[str(script)]), CODE, "123456")
    assert not result.ok
    assert "exit status 3" in result.detail
    assert CODE not in result.detail and "123456" not in result.detail


def test_a_missing_or_hanging_start_host_is_a_failure(host, tmp_path):
    assert not crd.start_host(settings(host, crd_launcher=[str(tmp_path / "nowhere")]), CODE, "123456").ok
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/bash\nsleep 30\n")
    sleeper.chmod(0o755)
    result = crd.start_host(settings(host, crd_launcher=[str(sleeper)], crd_timeout_seconds=0.5), CODE, "123456")
    assert not result.ok and "did not finish" in result.detail
