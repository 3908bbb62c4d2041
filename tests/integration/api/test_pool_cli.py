"""`lablink pool|pool set|history|recycle|reboot` against the API served over HTTP (the local
gateway's front door, the real handlers, a real PostgreSQL, EC2 on moto)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading

import pytest
from api_support import ADMIN_PASSWORD

from lablink_cli.main import build_parser, main
from lablink_cli.pool import cmd_pool_set
from lablink_local import gateway as gateway_module
from lablink_local.gateway import Gateway

COMMAND = "DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=4/0Abc-def_ghi"


@pytest.fixture
def api_url(api_env):
    """The API on a free local port, served from a thread of this process."""
    loop = asyncio.new_event_loop()
    runner = loop.run_until_complete(gateway_module.start("127.0.0.1", 0, Gateway(stage="prod")))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{gateway_module.bound_port(runner)}/prod"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def cli(capsys, api_url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the provisioning steps logged (to stdout, as in Lambda) before this command
    code = main([*args, "--url", api_url, "--password", ADMIN_PASSWORD, "--poll", "0.05"])
    out, err = capsys.readouterr()
    return code, out, err


def test_pool_set_accepts_durations_and_the_schedule_then_pool_shows_it(api_url, capsys):
    code, out, err = cli(
        capsys, api_url, "pool", "set", "--min-free", "0", "--idle-timeout", "30m", "--max-session", "3h",
        "--prewarm", "15m", "--closes-at", "2026-03-02T17:00:00Z", "--pause",
    )  # fmt: skip
    assert code == 0, err
    assert "idle_timeout_s 1800" in out and "max_session_s 10800" in out and "paused True" in out

    code, out, err = cli(capsys, api_url, "pool")
    assert code == 0, err
    assert "idle timeout 30m, max session 3h" in out and "prewarm 15m, PAUSED" in out
    assert "closes 2026-03-02T17:00:00Z" in out and "last reconcile: never" in out and "cost so far: $0.00" in out

    code, out, _ = cli(capsys, api_url, "pool", "--json")
    shown = json.loads(out)
    assert shown["policy"]["max_session_s"] == 10800 and shown["status"]["closes_at"] == "2026-03-02T17:00:00Z"


def test_pool_set_refused_says_why(api_url, capsys):
    code, _, err = cli(capsys, api_url, "pool", "set", "--opens-at", "2026-03-02T09:00:00")
    assert code == 2 and "time zone" in err and "HTTP 422" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pool", "set", "--idle-timeout", "30 minutes"])
    args = build_parser().parse_args(["pool", "set", "--max-session", "90", "--resume"])
    assert (args.run, args.max_session, args.paused) == (cmd_pool_set, 90, False)


def test_recycle_reboot_and_history_from_the_command_line(api_url, capsys, provisioner, db):
    code, out, err = cli(capsys, api_url, "launch", "1", "--json")  # returns once requested
    assert code == 0, err
    (hostname,) = json.loads(out)["hostnames"]
    assert provisioner.wait(60)  # the launch step has created the VM's row and instance
    db.vms.set_status(hostname, "running")
    db.assignments.claim("ada@example.org", COMMAND)

    code, out, err = cli(capsys, api_url, "reboot", hostname)
    assert code == 0, err
    assert f"rebooting {hostname}" in out and "reboot succeeded: 1 rebooted" in out
    code, out, err = cli(capsys, api_url, "recycle", hostname)
    assert code == 0, err
    assert f"recycling {hostname}; its replacement: " in out and "destroy succeeded" in out
    assert provisioner.wait(60)

    code, out, err = cli(capsys, api_url, "history", "--format", "csv")
    assert code == 0, err
    (row,) = csv.DictReader(io.StringIO(out))
    assert (row["hostname"], row["email"], row["release_reason"]) == (hostname, "ada@example.org", "recycled")
    code, _, err = cli(capsys, api_url, "reboot", "lablink-vm-test-99")
    assert code == 2 and "No VM is named lablink-vm-test-99" in err
