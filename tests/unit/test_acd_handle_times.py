"""Handle times kept in Redis by the engine when router calls end, the wait estimate that
uses them (announcements and the router's entry estimate), and the estimate's error against
the real wait — on a real redis-server with the real engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_acd_router import FakeAmi, wait_event

from acd.announce import entry_estimate, waiting_place
from acd.engine import RedisEngine
from acd.router import AcdRouter
from acd.settings import AgentProfile
from hotline.config import load_config

GJJ = AgentProfile(skills={"gjj": 1})
CONFIG = load_config(Path(__file__).resolve().parents[2] / "hotline.yaml")
T0 = 1_800_000_000.0


def answer_and_end(engine: RedisEngine, call: str, at: float, talk_s: float) -> None:
    """The call is offered to the one ready agent at ``at``, answered, and ends after
    ``talk_s`` of talk."""
    offers = engine.enqueue(call, "gjj", 0, at)
    assert len(offers) == 1
    engine.accept(offers[0].agent_id, call, at + 2)
    engine.hangup(call, at + 2 + talk_s)


def test_each_ended_call_updates_the_agents_and_the_skills_handle_time(engine) -> None:
    wrapup = engine.settings.wrapup_s
    engine.login("1002", GJJ, T0)
    assert engine.handle_times("gjj") == (None, {})
    answer_and_end(engine, "1700.1", T0 + 1, talk_s=100)
    assert engine.handle_times("gjj") == (100 + wrapup, {"1002": 100 + wrapup})
    engine.wrapup_end("1002", T0 + 200)
    answer_and_end(engine, "1700.2", T0 + 300, talk_s=300)
    expected = 100 + wrapup + 0.1 * (300 - 100)  # moving average, newest call weighs 0.1
    skill, agents = engine.handle_times("gjj")
    assert skill == pytest.approx(expected)
    assert agents == {"1002": pytest.approx(expected)}


def test_a_call_abandoned_or_hung_up_while_ringing_keeps_no_handle_time(engine) -> None:
    engine.login("1002", GJJ, T0, ready=False)
    engine.enqueue("1700.3", "gjj", 0, T0 + 1)
    engine.hangup("1700.3", T0 + 30)  # abandoned while waiting
    engine.ready("1002", T0 + 40)
    engine.enqueue("1700.4", "gjj", 0, T0 + 50)  # offered, caller hangs up while ringing
    engine.hangup("1700.4", T0 + 55)
    assert engine.handle_times("gjj") == (None, {})


async def test_announced_wait_uses_the_kept_handle_time_else_the_default(engine, redis) -> None:
    engine.login("1002", GJJ, T0)
    engine.login("1012", GJJ, T0, ready=False)
    for i in range(3):  # 1002 takes the first, two wait
        engine.enqueue(f"1700.{i + 1}", "gjj", 0, T0 + 1 + i)
    third = await waiting_place(redis, "1700.3", handle_s=300)
    assert (third.position, third.wait_s) == (2, pytest.approx(2 * 300 / 2))
    engine.accept("1002", "1700.1", T0 + 2)
    engine.hangup("1700.1", T0 + 2 + 45)  # 45 s talk + 15 s wrap-up
    third = await waiting_place(redis, "1700.3", handle_s=300)
    assert third.wait_s == pytest.approx(2 * 60 / 2)
    assert entry_estimate(engine._r, "1700.3", handle_s=300) == third


async def test_unreadable_handle_time_falls_back_to_the_configured_default(engine, redis) -> None:
    engine.login("1012", GJJ, T0, ready=False)
    engine.enqueue("1700.5", "gjj", 0, T0)
    for junk in ("nan", "-4", "x" * 30, "1e300"):
        await redis.hset("acd:h:gjj", "*", junk)
        place = await waiting_place(redis, "1700.5", handle_s=240)
        assert place.wait_s == pytest.approx(240)


def test_router_records_the_entry_estimate_and_the_engine_its_error(engine) -> None:
    clock = FakeClock(T0)
    router = AcdRouter(CONFIG, engine._r, engine, clock=clock)
    ami = FakeAmi()
    router.ami = ami  # type: ignore[assignment]
    engine.login("1002", GJJ, T0, ready=False)
    asyncio.run(router.handle(wait_event("1700.6"), ami))
    assert float(engine._r.hget("acd:c:1700.6", "est")) == pytest.approx(300.0)
    [offer] = engine.ready("1002", T0 + 40)
    engine.accept("1002", offer.call_id, T0 + 45)  # waited 45 s, told 5 minutes
    assert engine.estimate_errors() == {"gjj": (1, pytest.approx(255.0))}
    answer_log = [f for _, f in engine._r.xrange("acd:log") if f[b"ev"] == b"answer"]
    assert answer_log[0][b"est"] == b"300.0"


def test_a_call_offered_at_once_gets_no_estimate_and_counts_no_error(engine) -> None:
    router = AcdRouter(CONFIG, engine._r, engine, clock=FakeClock(T0))
    ami = FakeAmi()
    router.ami = ami  # type: ignore[assignment]
    engine.login("1002", GJJ, T0)
    asyncio.run(router.handle(wait_event("1700.7"), ami))
    assert ami.agents_rung() == ["1002"]
    assert engine._r.hget("acd:c:1700.7", "est") is None
    assert engine.note_estimate("1700.7", 60.0) is False  # reserved: not waiting any more
    assert engine.note_estimate("1700.99", 60.0) is False
    assert not engine._r.exists("acd:c:1700.99")  # a gone call is never recreated
    engine.accept("1002", "1700.7", T0 + 3)
    assert engine.estimate_errors() == {}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
