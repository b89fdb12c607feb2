"""The observed time per place: kept by the engine's answer path in Redis (``P g:<skill>``),
announced to waiting callers blended with the staffing model, ignored when it is garbage —
on a real redis-server with the real engine — and the simulator scoring exactly what
production announces."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis import Redis

from acd.announce import entry_estimate, waiting_place
from acd.engine import RedisEngine
from acd.estimate import GAP_ALPHA, WaitEstimator, next_gap
from acd.settings import AgentProfile
from acd.simulate import (
    HELD_OUT_SEEDS,
    TUNING_SEEDS,
    hotline,
    main,
    simulate,
    two_agents,
)

GJJ = AgentProfile(skills={"gjj": 1})
T0 = 1_800_000_000.0
WRAPUP = 15.0  # AcdSettings' default, the engine fixture's


def busy_morning(engine: RedisEngine) -> None:
    """Two 公积金 agents answer the first two callers (at +3 and +4 s) who were offered at
    once; five more queue behind them.  1002 ends its call at +63 s and answers the third
    caller at +80 s (wrap-up 15 s, 2 s ring), 1012 ends at +84 s and answers the fourth at
    +100 s.  Kept: handle times 75 and 95 s; gaps 76 s (+4 → +80, within the third caller's
    77 s wait) and 20 s (+80 → +100)."""
    engine.login("1002", GJJ, T0)
    engine.login("1012", GJJ, T0)
    for i in range(1, 8):
        engine.enqueue(f"1700.{i}", "gjj", 0, T0 + i)
    engine.accept("1002", "1700.1", T0 + 3)
    engine.accept("1012", "1700.2", T0 + 4)
    engine.hangup("1700.1", T0 + 63)
    assert [o.call_id for o in engine.tick(T0 + 78)] == ["1700.3"]
    engine.accept("1002", "1700.3", T0 + 80)
    engine.hangup("1700.2", T0 + 84)
    assert [o.call_id for o in engine.tick(T0 + 99)] == ["1700.4"]
    engine.accept("1012", "1700.4", T0 + 100)


async def test_a_caller_at_place_3_hears_the_observed_gap_blended_with_staffing(
    engine, redis
) -> None:
    busy_morning(engine)
    assert engine.time_per_place("gjj") == (pytest.approx(76 + (20 - 76) / 2), 2)
    handle = 75 + 0.1 * (95 - 75)
    staffing = 3 * handle / 2
    place = await waiting_place(redis, "1700.7", handle_s=300)
    assert place.position == 3
    assert place.wait_s == pytest.approx(0.5 * 3 * 48 + 0.5 * staffing)
    assert place.wait_s != pytest.approx(staffing)
    assert entry_estimate(engine._r, "1700.7", handle_s=300) == place


async def test_calls_offered_at_once_add_no_gap_even_after_ringing(engine, redis) -> None:
    engine.login("1002", GJJ, T0)
    engine.login("1012", GJJ, T0, ready=False)
    engine.enqueue("1700.1", "gjj", 0, T0)
    engine.accept("1002", "1700.1", T0 + 6)  # rang 6 s: waited, but never queued
    assert engine.time_per_place("gjj") == (None, 0)
    engine.enqueue("1700.2", "gjj", 0, T0 + 7)  # 1002 on a call, 1012 not ready: queued
    place = await waiting_place(redis, "1700.2", handle_s=240)
    assert place.wait_s == pytest.approx(1 * 240 / 2)  # staffing alone until a gap is known


async def test_a_garbage_gap_in_redis_is_ignored_and_staffing_announced(engine, redis) -> None:
    busy_morning(engine)
    staffing = 3 * (75 + 0.1 * (95 - 75)) / 2
    assert (await waiting_place(redis, "1700.7")).wait_s != pytest.approx(staffing)
    for junk in ("nan", "-4", "inf", "1e300", "x" * 30, ""):
        await redis.hset("acd:g:gjj", "gap", junk)
        place = await waiting_place(redis, "1700.7")
        assert place.wait_s == pytest.approx(staffing), junk
        assert entry_estimate(engine._r, "1700.7") == place


@pytest.mark.parametrize(
    "junk",
    [
        {"gap": "nan", "n": "3"},
        {"gap": "-8", "n": "3"},
        {"gap": "1e308", "n": "3"},
        {"gap": "20", "n": "x"},
        {"gap": "20", "n": "0.5"},
        {"gap": "20", "n": "3", "last": "soon"},
    ],
)
def test_the_answer_path_restarts_a_garbage_gap_instead_of_failing(engine, junk) -> None:
    engine.login("1002", GJJ, T0, ready=False)
    engine.enqueue("1700.1", "gjj", 0, T0)
    engine._r.hset("acd:g:gjj", mapping=junk)
    [offer] = engine.ready("1002", T0 + 30)
    engine.accept("1002", offer.call_id, T0 + 32)  # queued 30 s, answered after 32 s
    gap, n = engine.time_per_place("gjj")
    if "last" in junk:  # a sane gap and count: an unreadable last answer caps it by the wait
        assert (gap, n) == (pytest.approx(20 + (32 - 20) / 4), 4)
    else:
        assert (gap, n) == (32.0, 1)


def test_a_last_answer_after_now_counts_the_whole_wait() -> None:
    # the router's clock stepped back: the gap is not negative
    assert next_gap(10.0, 1, last=500.0, now=400.0, wait_s=12.0, queued=True) == (11.0, 2)


def test_the_first_gaps_are_a_plain_mean_then_the_newest_weighs_gap_alpha() -> None:
    est = WaitEstimator()
    est.observe_answer("gjj", now=100, wait_s=0)  # offered at once: sets the last answer only
    for now, wait in ((110, 30), (130, 40), (160, 50)):
        est.observe_answer("gjj", now=now, wait_s=wait)
    assert est.gap("gjj") == pytest.approx((10 + 20 + 30) / 3)
    n = round(1 / GAP_ALPHA)
    gap, count = 20.0, 3
    for _ in range(n):
        gap, count = next_gap(gap, count, last=0.0, now=20.0, wait_s=60.0, queued=True)
    before = gap
    gap, count = next_gap(gap, count, last=0.0, now=80.0, wait_s=90.0, queued=True)
    assert gap == pytest.approx(before + GAP_ALPHA * (80 - before))


def test_the_simulator_scores_what_the_engine_announces(engine) -> None:
    """The simulated hotline through the Lua engine, each queued caller's estimate read as
    production reads it (entry_estimate from Redis) beside the simulator's own ``announced``;
    the same errors, call for call, and the same as with the pure policy."""
    scenario = replace(hotline(duration_s=3000, seed=6), warmup_s=0)
    client: Redis = engine._r
    in_redis = RedisEngine(client, scenario.settings)
    in_redis.install()

    def production(call_id: str) -> float | None:
        place = entry_estimate(client, call_id, handle_s=scenario.default_handle_s)
        return None if place is None else place.wait_s

    got = simulate(scenario, in_redis, probes={"production": production})
    pure = simulate(scenario)
    total = got.total()
    assert total.scored > 100
    assert total.errors["production"] == pytest.approx(total.errors["announced"], abs=1e-6)
    assert total.errors["announced"] == pytest.approx(pure.total().errors["announced"])
    assert total.mae("announced") != pytest.approx(total.mae("staffing_kept"))
    gaps = [in_redis.time_per_place(s)[1] for s in scenario.loads]
    assert sum(gaps) > 100


def test_estimates_table_keeps_tuning_and_held_out_seeds_apart(capsys) -> None:
    for name in TUNING_SEEDS:
        assert not set(TUNING_SEEDS[name]) & set(HELD_OUT_SEEDS[name])
    assert main(["estimates", "--duration", "1500"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.startswith("## ")]
    assert heads == [
        "## hotline, tuning seeds 1–3",
        "## hotline, held-out seeds 11–15",
        "## two-agents, tuning seeds 1–200",
        "## two-agents, held-out seeds 1001–1200",
    ]
    rows = [line for line in out.splitlines() if line.startswith("| announced")]
    assert len(rows) == 4 and all(len(r.split("|")) == len(rows[0].split("|")) for r in rows[:2])


def test_two_agents_is_the_real_call_benchs_load() -> None:
    report = simulate(two_agents(seed=1001, duration_s=20_000))
    gjj = report.skills["gjj"]
    assert 3000 < gjj.offered < 3700  # one caller every 6 s
    assert gjj.answered == gjj.offered  # callers hold on
    assert report.occupancy["gjj"] > 0.99  # 3 Erlangs offered to 2 agents
