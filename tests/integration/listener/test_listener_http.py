"""POST /vm_startup and GET /healthz against a real PostgreSQL and the real app."""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from db_probe import assignment_row
from listener_support import add_vm, poll, wait_for

from lablink.models import VmStatus

COMMAND = 'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="4/0Ab-test" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'


def test_assigned_before_the_poll_is_answered_at_once(db, listener):
    token = add_vm(db, "vm-1")
    assignment = db.assignments.claim("ada@example.org", COMMAND)

    result = poll(listener, "vm-1", token)

    assert result.status == 200
    assert result.json() == {"status": "success", "pin": assignment.pin, "command": COMMAND}
    assert result.body.startswith(b"{")  # no heartbeat was needed
    assert listener.waiters() == 0


def test_assignment_during_the_wait_is_delivered(db, listener):
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token)
        wait_for(lambda: listener.waiters() == 1)
        assignment = db.assignments.claim("ada@example.org", COMMAND)
        assigned_at = time.monotonic()
        result = waiting.result(timeout=10)

    assert result.status == 200
    assert result.json() == {"status": "success", "pin": assignment.pin, "command": COMMAND}
    # Woken by the notification, not by the periodic re-read (60 s in these tests).
    assert result.finished - assigned_at < 2.0
    assert listener.waiters() == 0


def test_a_notification_wakes_both_waiters_of_its_host_and_no_other(db, listener):
    tokens = {"vm-a": add_vm(db, "vm-a"), "vm-b": add_vm(db, "vm-b", status=VmStatus.INITIALIZING)}
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(poll, listener, "vm-a", tokens["vm-a"])
        second = pool.submit(poll, listener, "vm-a", tokens["vm-a"])
        other = pool.submit(poll, listener, "vm-b", tokens["vm-b"], wait=3)
        wait_for(lambda: listener.waiters() == 3)

        assignment = db.assignments.claim("ada@example.org", COMMAND)  # only vm-a is running: it gets it
        assert assignment.hostname == "vm-a"
        expected = {"status": "success", "pin": assignment.pin, "command": COMMAND}
        assert first.result(timeout=10).json() == expected
        assert second.result(timeout=10).json() == expected
        assert listener.waiters() == 1
        assert not other.done()
        assert other.result(timeout=10).status == 204  # its wait ran out, nothing delivered


def test_heartbeat_response_is_whitespace_at_the_interval_then_json(db, listener):
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token)
        wait_for(lambda: listener.waiters() == 1)
        time.sleep(1.1)  # about five heartbeats of 0.2 s
        assignment = db.assignments.claim("ada@example.org", COMMAND)
        result = waiting.result(timeout=10)

    assert result.status == 200
    assert result.body.startswith(b"    ")
    assert json.loads(result.body) == {"status": "success", "pin": assignment.pin, "command": COMMAND}
    # Each space arrived on its own, about one interval after the previous one.
    spaces = [at for at, chunk in result.chunks if chunk == b" "]
    assert len(spaces) >= 4 and b"".join(chunk for _, chunk in result.chunks[len(spaces) :]).startswith(b"{")
    gaps = [b - a for a, b in itertools.pairwise(spaces)]
    assert all(0.1 < gap < 0.6 for gap in gaps), gaps


def test_wait_mode_times_out_with_204(db, listener):
    token = add_vm(db, "vm-1")
    result = poll(listener, "vm-1", token, wait=0.5)
    assert result.status == 204
    assert result.body == b""
    assert result.finished - result.started >= 0.5
    assert listener.waiters() == 0


def test_wait_mode_delivers_the_assignment_as_json(db, listener):
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token, wait=10)
        wait_for(lambda: listener.waiters() == 1)
        assignment = db.assignments.claim("ada@example.org", COMMAND)
        result = waiting.result(timeout=10)
    assert result.status == 200
    assert result.body.startswith(b"{")
    assert result.json() == {"status": "success", "pin": assignment.pin, "command": COMMAND}


def test_a_vm_removed_while_waiting_gets_the_error_json(db, start_listener):
    listener = start_listener(reconcile_seconds=0.3)
    token = add_vm(db, "vm-1")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token)
        wait_for(lambda: listener.waiters() == 1)
        db.vms.delete(["vm-1"])
        result = waiting.result(timeout=10)
    assert result.status == 200
    body = result.json()
    assert body["status"] == "error" and "removed" in body["message"]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("wrong token", 401),
        ("another VM's token", 403),
        # No enumeration (API.md v2): without a valid token, a hostname that does not exist
        # is answered exactly as one that does; a valid token names its own VM, so asking
        # for an unknown one with it is asking for another VM's.
        ("unknown VM, wrong token", 401),
        ("unknown VM, no token", 401),
        ("unknown VM, a VM's token", 403),
        ("no hostname", 400),
        ("bad JSON", 400),
        ("hostname not a name", 400),
        ("bad wait", 400),
    ],
)
def test_bad_requests_are_refused_with_a_clear_error(db, listener, case, status):
    token = add_vm(db, "vm-1")
    other_token = add_vm(db, "vm-2")
    request = {
        "no token": dict(hostname="vm-1", token=None),
        "wrong token": dict(hostname="vm-1", token="not-a-token"),
        "another VM's token": dict(hostname="vm-1", token=other_token),
        "unknown VM, wrong token": dict(hostname="vm-9", token="not-a-token"),
        "unknown VM, no token": dict(hostname="vm-9", token=None),
        "unknown VM, a VM's token": dict(hostname="vm-9", token=token),
        "no hostname": dict(hostname=None, token=token, body=b'{"status": "running"}'),
        "bad JSON": dict(hostname=None, token=token, body=b'{"hostname": '),
        "hostname not a name": dict(hostname="VM; rm -rf /", token=token),
        "bad wait": dict(hostname="vm-1", token=token, wait=-1),
    }[case]
    result = poll(listener, **request)

    assert result.status == status
    assert isinstance(result.json()["error"], str)
    assert listener.waiters() == 0
    if status == 401:
        assert assignment_row(db, "vm-1")["crdcommand"] is None


def test_healthz_counts_waiters(db, listener):
    token = add_vm(db, "vm-1")
    assert listener.health() == (200, {"status": "ok", "waiters": 0})
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, listener, "vm-1", token, wait=1)
        wait_for(lambda: listener.waiters() == 1)
        assert waiting.result(timeout=10).status == 204
    assert listener.health() == (200, {"status": "ok", "waiters": 0})


def test_configured_table_and_channel_are_used(fresh_database, start_listener):
    from lablink.config import DbConfig
    from lablink.db.database import Database
    from lablink.migrations import migrate

    config = DbConfig(table_name="Lab VMs", message_channel="lab-updates")
    url = fresh_database()
    migrate(url, config)
    db = Database(url, config, actor="test")
    try:
        listener = start_listener(dsn=url, db=config)
        token = add_vm(db, "vm-1")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(poll, listener, "vm-1", token)
            wait_for(lambda: listener.waiters() == 1)
            assignment = db.assignments.claim("ada@example.org", COMMAND)
            assert waiting.result(timeout=10).json()["pin"] == assignment.pin
    finally:
        db.close()


def test_a_bad_token_cannot_tell_which_hostnames_exist(db, listener):
    """Probing a real and a made-up hostname with the same bad token gives identical answers."""
    add_vm(db, "vm-1")
    answers = [poll(listener, hostname=name, token="guessed-token") for name in ("vm-1", "vm-does-not-exist")]
    assert [a.status for a in answers] == [401, 401]
    assert answers[0].body == answers[1].body
