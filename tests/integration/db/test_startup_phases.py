"""The total startup time comes out right whatever order the three phases arrive in."""

from __future__ import annotations

from itertools import permutations

import pytest

T0 = 1_700_000_000
PHASES = {
    "provisioning": {"terraform_apply_start": T0, "terraform_apply_end": T0 + 75},
    "cloud_init": {"cloud_init_start": T0 + 80, "cloud_init_end": T0 + 200, "cloud_init_duration_seconds": 120.25},
    "container": {"container_start": T0 + 210, "container_end": T0 + 255.5},
}


@pytest.mark.parametrize("order", list(permutations(PHASES)), ids=lambda o: ">".join(o))
def test_every_order_gives_the_same_total(db, order):
    db.vms.insert("vm-1")
    totals = [db.startup.record("vm-1", PHASES[name]) for name in order]
    assert totals[:2] == [None, None]
    assert totals[2] == pytest.approx(75 + 120.25 + 45.5)
    vm = db.vms.get("vm-1")
    assert vm["terraformapplydurationseconds"] == pytest.approx(75)
    assert vm["cloudinitdurationseconds"] == pytest.approx(120.25)  # the reported value wins
    assert vm["containerstartupdurationseconds"] == pytest.approx(45.5)  # end minus start
    assert vm["totalstartupdurationseconds"] == pytest.approx(240.75)


def test_a_repeated_phase_keeps_the_total_consistent(db):
    db.vms.insert("vm-1")
    for name in PHASES:
        db.startup.record("vm-1", PHASES[name])
    assert db.startup.record("vm-1", {"container_startup_duration_seconds": 50}) == pytest.approx(75 + 120.25 + 50)
