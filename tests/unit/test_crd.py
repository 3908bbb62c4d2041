"""The CRD start-host command parser: the real command is accepted and rebuilt; anything
that could reach a shell is refused with a sentence."""

from __future__ import annotations

import pytest

from lablink.crd import CrdCommandError, parse_crd_command

GOOGLE = (
    'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0AVG7fiQ_x-Y" '
    '--redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
)


def test_the_command_google_gives_is_accepted_and_rebuilt():
    parsed = parse_crd_command(GOOGLE)
    assert parsed.code == "4/0AVG7fiQ_x-Y"
    assert parsed.canonical == (
        "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=4/0AVG7fiQ_x-Y "
        "--redirect-url=https://remotedesktop.google.com/_/oauthredirect --name=$(hostname)"
    )
    assert parse_crd_command(parsed.canonical) == parsed  # the canonical form parses to itself


@pytest.mark.parametrize(
    "command",
    [
        "start-host --code=abc",
        "/usr/bin/start-host --code=a/b_c-d",
        "start-host --name=anything --code=abc",
        "start-host --code='abc' --name=\"my desk; with spaces\"",
        "DISPLAY=:0 start-host --code=abc",
    ],
)
def test_accepted_variants(command):
    parsed = parse_crd_command(command)
    assert parsed.canonical.endswith("--name=$(hostname)")
    assert "--code=" in parsed.canonical


@pytest.mark.parametrize(
    "command, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("start-host --code=abc; reboot", "shell operators"),
        ("start-host --code=abc && reboot", "shell operators"),
        ("start-host --code=abc | sh", "shell operators"),
        ("start-host --code=`reboot`", "shell operators"),
        ("start-host --code=$(reboot)", "shell operators"),
        ("start-host --code=abc > /etc/passwd", "shell operators"),
        ("start-host --code=abc $(reboot)", "shell operators"),
        ("start-host --code=abc\nreboot", "single line"),
        ("start-host --code=abc\x00", "single line"),
        ("start-host --code='abc", "unclosed quote"),
        ("start-host", "must hold a --code="),
        ("start-host --code=", "--code= value"),
        ("start-host --code=a+b", "--code= value"),
        ("start-host --code=abc --code=def", "twice"),
        ("start-host --code=abc --pin=123456", "unexpected part"),
        ("start-host --code=abc extra", "unexpected part"),
        ("bash -c start-host --code=abc", "must run start-host"),
        ("/tmp/start-host-evil --code=abc", "must run start-host"),
        ("DISPLAY=$(x) start-host --code=abc", "DISPLAY="),
        ("start-host --code=abc --redirect-url=http://example.org/", "https://"),
        ("start-host --code=abc --redirect-url=https://", "https://"),
        ("start-host --code=abc --redirect-url=javascript:alert(1)", "shell operators"),
        ("start-host --code=" + "a" * 1100, "longer than 1024"),
    ],
)
def test_refused_with_a_reason(command, reason):
    with pytest.raises(CrdCommandError) as refused:
        parse_crd_command(command)
    assert reason in str(refused.value)
    assert str(refused.value).endswith(".")
