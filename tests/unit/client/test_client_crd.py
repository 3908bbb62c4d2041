"""The VM's own check of the researcher's command, and start-host run as an argv list."""

from __future__ import annotations

import pytest
from client_fakes import FakeHost

from lablink_client import crd

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


def test_start_host_gets_the_argv_and_the_pin_twice(tmp_path, monkeypatch):
    host = FakeHost(tmp_path)
    result = crd.start_host([str(host.bin / "start-host")], CODE, "lablink-vm-dev-1", "123456", timeout=30)
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


def test_a_failing_start_host_is_a_failure_with_its_status_and_no_secret(tmp_path):
    host = FakeHost(tmp_path)
    host.start_host_exits(3)
    script = tmp_path / "noisy-start-host"
    script.write_text('#!/bin/bash\necho "bad code $1"\nexit 3\n')
    script.chmod(0o755)
    result = crd.start_host([str(script)], CODE, "lablink-vm-dev-1", "123456", timeout=30)
    assert not result.ok
    assert "exit status 3" in result.detail
    assert CODE not in result.detail


def test_a_missing_or_hanging_start_host_is_a_failure(tmp_path):
    assert not crd.start_host([str(tmp_path / "nowhere")], CODE, "h", "123456", timeout=5).ok
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/bash\nsleep 30\n")
    sleeper.chmod(0o755)
    result = crd.start_host([str(sleeper)], CODE, "h", "123456", timeout=0.5)
    assert not result.ok and "did not finish" in result.detail
