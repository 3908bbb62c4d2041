"""Soak at CI scale (tests/reliability/soak.py for two minutes; bench/prove.py runs it for 30): steady
launches, requests, destroys, telemetry, logs and dashboard reads through the local stack,
with the listener's and the gateway's memory and the database connections sampled."""

from __future__ import annotations

from proof_support import record, run_program


def test_memory_and_database_connections_stay_flat_under_steady_work():
    result = run_program("tests.reliability.soak", "--seconds", "120", "--fleet", "6", "--sample", "3", timeout=300)
    record("soak", {k: v for k, v in result.items() if k != "series"})
    assert result["violations"] == []
    assert result["errors"] == {}
    # It did the work it claims to have survived.
    work = result["work"]
    assert work["launches"] >= 2 and work["assignments"] >= 2 and work["destroyed"] >= 1
    assert work["telemetry_posts"] >= 50 and work["log_lines"] >= 50
    for key in ("listener_rss_mb", "gateway_rss_mb"):
        assert result[key]["second_half_median"] <= max(result[key]["first_half_median"] + 15, result[key]["first_half_median"] * 1.1)
    assert result["db_connections"]["second_half_peak"] <= result["db_connections"]["first_half_peak"] + 1
