"""Fault injection end to end (tests/reliability/fault_injection.py at CI scale;
bench/prove.py runs it with 100 VMs and 100 researchers): PostgreSQL restarted, the listener and client agents
killed and started again while VMs boot and researchers ask for them; every log batch
delivered three times, out of order."""

from __future__ import annotations

from proof_support import record, run_program


def test_every_researcher_gets_their_own_vm_and_nothing_is_lost_through_faults():
    vms = 6
    result = run_program("tests.reliability.fault_injection", "--vms", str(vms), "--fault-gap", "1.5", "3.5", timeout=300)
    record("faults", result)
    assert result["violations"] == []
    # Every kind of fault was made, and the proof saw real traffic through them.
    assert result["faults"]["postgres_restarts"] >= 1
    assert result["faults"]["listener_kills"] >= 1
    assert result["faults"]["agent_kills"] >= 1
    assert result["researchers_given_a_vm"] == vms
    assert result["vms_that_ran_a_command"] == vms
    assert result["log_deliveries"] >= 3 * result["log_batches"]
    assert result["log_events_stored"] == result["log_events_in_group"] > 0
