"""The simulator, driving the production policy, against queueing theory (seeded runs)."""

from __future__ import annotations

import pytest

from acd.erlang import erlang_a, erlang_c_service_level
from acd.estimate import QueueAverage, WaitEstimator
from acd.simulate import main, simulate, single_skill


def test_one_skill_matches_erlang_c_within_one_point() -> None:
    # 10 Erlangs, 300 s handle, 14 agents: Erlang C says 86.7 % answered within 20 s.
    report = simulate(single_skill(10, 300, 14, duration_s=1_500_000, seed=7))
    theory = erlang_c_service_level(14, 10, 300, 20)
    assert abs(theory - 0.8666) < 0.0005
    assert report.skills["gjj"].offered > 45_000
    assert abs(report.skills["gjj"].service_level - theory) < 0.01
    assert abs(report.occupancy["gjj"] - 10 / 14) < 0.01


def test_impatient_callers_match_erlang_a_within_one_point() -> None:
    report = simulate(single_skill(10, 300, 11, patience_s=120, duration_s=1_000_000, seed=1))
    theory = erlang_a(11, 10 / 300, 300, 120, 20)
    gjj = report.skills["gjj"]
    assert abs(gjj.service_level - theory["service_level"]) < 0.01
    assert abs(gjj.abandon_rate - theory["p_abandon"]) < 0.01


def test_cli_prints_the_table_and_the_theory(capsys) -> None:
    assert main(["erlang-c", "--duration", "20000"]) == 0
    out = capsys.readouterr().out
    assert "| gjj |" in out and "Erlang C: SL 86.66 %" in out


def test_wait_estimate_grows_with_the_callers_place_in_the_queue() -> None:
    est = WaitEstimator(default_handle_s=300)
    # 14 busy agents, 300 s each: a place in the queue moves every 300/14 s.
    assert est.estimate("gjj", 3, capacity=14) == pytest.approx(3 * 300 / 14)
    est.observe_answer("gjj", now=100, wait_s=0)
    est.observe_answer("gjj", now=110, wait_s=30)  # 10 s since the last answer
    assert est.estimate("gjj", 4, capacity=14) == pytest.approx(40)
    assert est.staffing_estimate("gjj", 4, capacity=14) == pytest.approx(4 * 300 / 14)


def test_app_queue_style_peer_is_a_moving_average_of_waits() -> None:
    peer = QueueAverage()
    peer.observe("gjj", 40)
    peer.observe("gjj", 80)
    assert peer.estimate("gjj") == pytest.approx((3 * 10 + 80) / 4)


def test_hotline_report_sets_each_estimate_beside_app_queues_average(capsys) -> None:
    assert main(["hotline", "--duration", "20000", "--seed", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("| announced MAE s | app_queue MAE s |")
    total = next(line for line in lines if line.startswith("| all |"))
    ours, app_queue = (float(x) for x in total.strip("|").split("|")[-2:])
    assert 0 < ours < 120 and 0 < app_queue < 120
    models = [line.split("|")[1].strip() for line in lines if line.startswith("| ")]
    assert "app_queue's average" in models and "staffing, kept handle (announced before)" in models
