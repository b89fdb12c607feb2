"""Two routers in the simulator (acd/simulate_pair.py, the production policy): a shift with
agents dropping out and the leader killed between a decision and its Redirect."""

from __future__ import annotations

from dataclasses import replace

from acd.simulate_pair import main, pair_scenario, simulate_pair


def test_leader_killed_mid_shift_no_double_offer_no_lost_caller_counters_equal_records() -> None:
    report = simulate_pair(pair_scenario(duration_s=4 * 3600, seed=3))
    assert report.calls > 2000 and report.dropouts > 100
    assert (report.killed, report.leader_at_end) == ("router-1", "router-2")
    assert report.lost_offers >= 1 and report.reoffered_after_takeover == report.lost_offers
    assert report.double_offers == 0
    assert report.lost_callers == 0
    assert report.mismatches == []
    assert report.answered + report.abandoned == report.calls


def test_without_the_takeovers_reconciliation_the_counters_drift() -> None:
    report = simulate_pair(replace(pair_scenario(duration_s=4 * 3600, seed=3), reconcile=False))
    assert report.lost_offers >= 1 and report.reoffered_after_takeover == 0
    assert report.mismatches  # the lost offer and the caller nobody queued


def test_cli_prints_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--duration", "3600", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "| double offers | 0 |" in out and "| lost callers | 0 |" in out
