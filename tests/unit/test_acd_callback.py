"""Callbacks instead of waiting (issue 9): the caller hangs up keeping their place; when their
turn comes an agent is reserved first, then the caller is called back.  The pure policy and
the Redis engine (a real redis-server) must decide alike."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from redis import Redis

from acd.engine import RedisEngine
from acd.policy import AgentState, Offer, Policy, Reason, Refused
from acd.settings import AcdSettings, AgentProfile, CallbackPolicy

GJJ1 = AgentProfile(skills={"gjj": 1})
ZONGHE = AgentProfile(general=True)
SETTINGS = AcdSettings(
    wrapup_s=10,
    ring_timeout_s=15,
    callback=CallbackPolicy(ring_s=40, retries=2, retry_after_s=60),
)


@pytest.fixture(params=["policy", "redis"])
def acd(request: pytest.FixtureRequest, acd_redis_port: int) -> Iterator[Policy | RedisEngine]:
    """Each scenario runs against both implementations."""
    if request.param == "policy":
        yield Policy(SETTINGS)
        return
    client = Redis(port=acd_redis_port)
    client.flushdb()
    engine = RedisEngine(client, SETTINGS)
    engine.install()
    yield engine
    client.close()


def test_callback_keeps_its_place_ahead_of_later_callers(acd: Policy | RedisEngine) -> None:
    acd.login("1002", GJJ1, now=0, ready=False)
    acd.enqueue("early", "gjj", 0, now=10)
    acd.enqueue("later", "gjj", 0, now=20)
    acd.callback("early", now=30)  # the caller hung up to be called back
    assert acd.position("early") == 1 and acd.position("later") == 2
    assert acd.callback_tries("early") == 0 and acd.callback_tries("later") is None
    # the agent becomes ready: the callback is offered first (agent reserved before dialling)
    assert acd.ready("1002", now=40) == [Offer("early", "1002", 40)]
    assert acd.agent_state("1002") == (AgentState.RESERVED, "", "early")


def test_a_callback_offer_holds_its_agent_for_the_callers_ring_too(
    acd: Policy | RedisEngine,
) -> None:
    acd.login("1002", GJJ1, now=0, ready=False)
    acd.enqueue("cb", "gjj", 0, now=1)
    acd.callback("cb", now=2)
    acd.ready("1002", now=5)
    assert acd.next_due() == 5 + 15 + 40  # agent ring + the callback's ring and greeting
    acd.accept("1002", "cb", now=30)
    assert acd.agent_state("1002")[0] == AgentState.ON_CALL


def test_failed_callback_frees_the_agent_and_comes_back_to_its_place_after_the_retry_wait(
    acd: Policy | RedisEngine,
) -> None:
    acd.login("1002", GJJ1, now=0, ready=False)
    acd.enqueue("cb", "gjj", 0, now=1)
    acd.callback("cb", now=2)
    acd.ready("1002", now=5)
    # the caller does not answer: the agent takes the next caller meanwhile
    acd.enqueue("live", "gjj", 0, now=10)
    assert acd.callback_failed("1002", "cb", now=20) == [Offer("live", "1002", 20)]
    assert acd.call_state("cb") == ("retry", "")
    assert acd.callback_tries("cb") == 1
    acd.accept("1002", "live", now=21)
    acd.enqueue("late", "gjj", 0, now=30)
    assert acd.tick(79.9) == []
    assert acd.tick(80) == []  # back in its queue: nobody free yet
    assert acd.position("cb") == 1 and acd.position("late") == 2  # its place, not the end
    acd.hangup("live", now=81)
    assert acd.wrapup_end("1002", now=82) == [Offer("cb", "1002", 82)]


def test_callback_failing_more_than_the_retries_is_given_up(acd: Policy | RedisEngine) -> None:
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("other", "gjj", 0, now=0)
    acd.accept("1002", "other", now=0)
    acd.enqueue("cb", "gjj", 0, now=1)
    acd.callback("cb", now=2)
    now = 3.0
    for tries in (1, 2, 3):
        acd.hangup("other", now=now)
        offers = acd.wrapup_end("1002", now=now + 1)
        assert offers == [Offer("cb", "1002", now + 1)]
        acd.callback_failed("1002", "cb", now=now + 2)
        if tries < 3:
            assert acd.callback_tries("cb") == tries
            acd.enqueue("other", "gjj", 0, now=now + 3)
            assert acd.call_state("other") == ("reserved", "1002")
            acd.accept("1002", "other", now=now + 3)
            acd.tick(now + 70)
            now += 70
    assert acd.call_state("cb") is None  # given up: the router turns it into a ticket
    assert acd.agent_state("1002")[0] == AgentState.READY


def test_callback_events_that_do_not_fit_are_refused(acd: Policy | RedisEngine) -> None:
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("live", "gjj", 0, now=1)  # offered at once
    with pytest.raises(Refused):
        acd.callback("live", now=2)  # not waiting any more: the caller goes to the agent
    with pytest.raises(Refused):
        acd.callback_failed("1002", "live", now=2)  # not a callback
    with pytest.raises(Refused):
        acd.callback("nobody", now=2)
    assert acd.agent_state("1002") == (AgentState.RESERVED, "", "live")


def test_callback_in_its_retry_wait_can_be_dropped(acd: Policy | RedisEngine) -> None:
    acd.login("1002", GJJ1, now=0, ready=False)
    acd.enqueue("cb", "gjj", 0, now=1)
    acd.callback("cb", now=2)
    acd.ready("1002", now=3)
    acd.callback_failed("1002", "cb", now=4)
    acd.hangup("cb", now=5)
    assert acd.call_state("cb") is None
    assert acd.next_due() is None  # its retry timer is gone too


def test_never_more_callbacks_in_flight_than_agents_reserved_for_them(
    acd: Policy | RedisEngine,
) -> None:
    """Ten callers choose callbacks, three agents: each callback dialled holds its own
    reserved agent, so at most three are in flight, whatever happens."""
    for agent in ("1001", "1002", "1003"):
        acd.login(agent, GJJ1, now=0, ready=False)
    for n in range(10):
        acd.enqueue(f"cb{n}", "gjj", 0, now=1 + n)
        acd.callback(f"cb{n}", now=1 + n)
    rng = random.Random(9)
    now = 20.0
    for agent in ("1001", "1002", "1003"):
        acd.ready(agent, now)
    for _ in range(60):
        now += 5
        states = [acd.call_state(f"cb{n}") for n in range(10)]
        in_flight = [s[1] for s in states if s is not None and s[0] == "reserved"]
        assert len(in_flight) == len(set(in_flight)) <= 3
        for agent in in_flight:
            assert acd.agent_state(agent)[0] == AgentState.RESERVED
        for agent in ("1001", "1002", "1003"):
            state, _, call = acd.agent_state(agent)
            if state == AgentState.RESERVED:
                if rng.random() < 0.5:
                    acd.callback_failed(agent, call, now)
                else:
                    acd.accept(agent, call, now)
            elif state == AgentState.ON_CALL:
                acd.hangup(call, now)
        acd.tick(now)


def test_policy_and_redis_engine_decide_alike_on_random_callback_events(
    acd_redis_port: int,
) -> None:
    """Random calls, callbacks, failed callbacks, answers, hang-ups, breaks and timers:
    every event gets the same offers, or the same refusal, from both implementations."""
    client = Redis(port=acd_redis_port)
    client.flushdb()
    settings = AcdSettings(
        wrapup_s=5,
        ring_timeout_s=8,
        callback=CallbackPolicy(ring_s=12, retries=1, retry_after_s=20),
    )
    pure, in_redis = Policy(settings, keep_log=False), RedisEngine(client, settings)
    in_redis.install()
    rng = random.Random(12345)
    profiles = {"1001": GJJ1, "1002": AgentProfile(skills={"gjj": 2}), "1008": ZONGHE}
    for agent, profile in profiles.items():
        assert pure.login(agent, profile, 0.0) == in_redis.login(agent, profile, 0.0)
    now, n_calls, compared, kinds = 0.0, 0, 0, set()
    for _ in range(2500):
        now += rng.expovariate(1 / 2.0)
        roll = rng.random()
        agent = rng.choice(list(profiles))
        call = f"c{rng.randint(1, max(n_calls, 1))}"
        held = pure.agent_state(agent)[2] or call
        if roll < 0.2:
            n_calls += 1
            args = ("enqueue", f"c{n_calls}", rng.choice(["gjj", "zonghe"]), rng.randint(0, 1), now)
        elif roll < 0.35:
            args = ("callback", call, now)
        elif roll < 0.48:
            args = ("callback_failed", agent, held, now)
        elif roll < 0.6:
            args = ("ready", agent, now)
        elif roll < 0.63:
            args = ("not_ready", agent, Reason.BREAK, now)
        elif roll < 0.75:
            args = ("accept", agent, held, now)
        elif roll < 0.78:
            args = ("no_answer", agent, held, now)
        elif roll < 0.88:
            args = ("hangup", rng.choice([call, held]), now)
        else:
            args = ("tick", now)
        results = []
        for router in (pure, in_redis):
            try:
                results.append(getattr(router, args[0])(*args[1:]))
            except Refused:
                results.append("refused")
        assert results[0] == results[1], (args, results)
        if results[0] != "refused":
            kinds.add(args[0])
        compared += results[0] not in ([], None, "refused")
        assert pure.next_due() == in_redis.next_due(), args
    assert compared > 100
    assert {"callback", "callback_failed", "tick"} <= kinds
    for n in range(1, n_calls + 1):
        assert pure.call_state(f"c{n}") == in_redis.call_state(f"c{n}")
        assert pure.callback_tries(f"c{n}") == in_redis.callback_tries(f"c{n}")
    client.close()
