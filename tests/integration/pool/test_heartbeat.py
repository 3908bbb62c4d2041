"""What the server records of an agent's heartbeat (the in-use state posted again unchanged):
a sign of life, so the reconciler's "silent" rule leaves the VM alone, and no change of use,
so an idle session's idle time keeps counting."""

from __future__ import annotations

import time

from lablink.models import VmStatus


def _pool_row(db, hostname: str) -> dict:
    return next(vm for vm in db.pool.list_vms() if vm["hostname"] == hostname)


def test_a_heartbeat_is_a_sign_of_life_not_a_change_of_use(db):
    db.vms.insert("lablink-vm-dev-1", status=VmStatus.RUNNING)
    hostname = db.assignments.claim("ada@example.org", "start-host --code=x").hostname
    db.vms.set_in_use(hostname, False)
    before = _pool_row(db, hostname)
    time.sleep(0.05)
    db.vms.set_in_use(hostname, False)  # the heartbeat
    after = _pool_row(db, hostname)
    assert after["last_seen_at"] > before["last_seen_at"]
    assert after["idle_since"] == before["idle_since"]
    db.vms.set_in_use(hostname, True)
    assert _pool_row(db, hostname)["idle_since"] > before["idle_since"]
