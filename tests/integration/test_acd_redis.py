"""The ACD's Redis engine against a real redis-server.

- Replayed on the same events, the Redis engine decides exactly what the pure policy decides
  (the simulator drives both through escalation, priorities, abandonment and wrap-up).
- Two workers hammering one Redis with simultaneous, conflicting events: no call offered
  twice at once, no agent holding two calls, counters equal to the event log.

redis-server runs on ``HOTLINE_ITEST_PORT_OFFSET + 390`` in a temporary directory.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis

from acd.engine import RedisEngine
from acd.policy import Offer, Policy, Reason, Refused
from acd.settings import AcdSettings, AgentProfile
from acd.simulate import hotline, simulate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

PORT = int(os.environ.get("HOTLINE_ITEST_PORT_OFFSET", "10000")) + 390


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir: Path = tmp_path_factory.mktemp("acd-redis")
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(PORT), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Redis(port=PORT)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                raise RuntimeError(f"redis-server did not start on port {PORT}") from None
            time.sleep(0.02)
    try:
        yield PORT
    finally:
        client.close()
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def client(redis_port: int) -> Iterator[Redis]:
    r = Redis(port=redis_port)
    r.flushdb()
    yield r
    r.close()


def engine(client: Redis, settings: AcdSettings) -> RedisEngine:
    e = RedisEngine(client, settings)
    e.install()
    return e


class Recorder:
    """Wraps a router and records every offer it makes, in order."""

    def __init__(self, inner: Policy | RedisEngine) -> None:
        self.inner = inner
        self.offers: list[Offer] = []

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            if isinstance(out, list):
                self.offers += out
            return out

        return call


def test_redis_engine_decides_like_the_pure_policy_on_the_same_calls(client: Redis) -> None:
    scenario = replace(hotline(duration_s=4000, seed=5), warmup_s=0)
    pure = Recorder(Policy(scenario.settings, keep_log=False))
    in_redis = Recorder(engine(client, scenario.settings))
    expected = simulate(scenario, pure)
    got = simulate(scenario, in_redis)
    assert len(pure.offers) > 300
    assert in_redis.offers == pure.offers
    assert got.total() == expected.total()
    assert client.xlen("acd:log") > 1000


def test_ring_no_answer_reentry_and_last_specialist_leaving_in_redis(client: Redis) -> None:
    acd = engine(client, AcdSettings(wrapup_s=10, ring_timeout_s=15, reentry_s=120))
    gjj, zonghe = AgentProfile(skills={"gjj": 1}), AgentProfile(general=True)
    acd.login("1001", gjj, now=0)
    acd.login("1002", gjj, now=1)
    assert acd.enqueue("call-1", "gjj", 0, now=5) == [Offer("call-1", "1001", 5)]
    assert acd.tick(20) == [Offer("call-1", "1002", 20)]
    assert acd.agent_state("1001") == ("not_ready", "no_answer", "")
    acd.accept("1002", "call-1", now=21)
    with pytest.raises(Refused):
        acd.accept("1001", "call-1", now=21)
    acd.enqueue("a", "gjj", 0, now=30, reentry_key="k1")
    acd.enqueue("b", "gjj", 0, now=31)
    acd.hangup("a", now=32)
    acd.enqueue("a2", "gjj", 0, now=40, reentry_key="k1")
    assert acd.position("a2") == 1
    acd.login("1008", zonghe, now=41)
    with pytest.raises(Refused):
        acd.logout("1002", now=42)  # on a call
    with pytest.raises(Refused, match="malformed"):
        acd.enqueue("p|x|0", "gjj", 0, now=43)  # would forge an escalation timer
    assert acd.agent_state("1002")[0] == "on_call"


def test_two_workers_hammering_one_redis_never_double_offer(client: Redis, redis_port: int) -> None:
    settings = AcdSettings(wrapup_s=0.05, ring_timeout_s=0.5, reentry_s=5)
    skills = list(settings.skills)
    setup = engine(client, settings)
    for i in range(40):
        skill = skills[i % len(skills)]
        profile = AgentProfile(general=True) if i % 5 == 0 else AgentProfile(skills={skill: 1})
        setup.login(f"{2000 + i}", profile, now=0.0)
    t0 = time.monotonic()
    calls: list[str] = []
    offers: list[Offer] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str, seed: int) -> None:
        r = Redis(port=redis_port)
        acd = RedisEngine(r, settings)
        wr = random.Random(seed)
        try:
            for n in range(1500):
                now = time.monotonic() - t0
                roll = wr.random()
                try:
                    if roll < 0.3:
                        cid = f"{name}-{n}"
                        with lock:
                            calls.append(cid)
                        got = acd.enqueue(
                            cid,
                            wr.choice(skills),
                            wr.randint(0, 2),
                            now,
                            reentry_key=f"k{wr.randint(0, 50)}",
                        )
                    elif roll < 0.55 and offers:
                        with lock:
                            o = wr.choice(offers)
                        acd.accept(o.agent_id, o.call_id, now)
                        got = []
                    elif roll < 0.65 and offers:
                        with lock:
                            o = wr.choice(offers)
                        got = acd.no_answer(o.agent_id, o.call_id, now)
                    elif roll < 0.85 and calls:
                        with lock:
                            cid = wr.choice(calls)
                        got = acd.hangup(cid, now)
                    elif roll < 0.92:
                        got = acd.ready(f"{2000 + wr.randrange(40)}", now)
                    elif roll < 0.95:
                        acd.not_ready(f"{2000 + wr.randrange(40)}", Reason.BREAK, now)
                        got = []
                    else:
                        got = acd.tick(now)
                except Refused:
                    got = []
                with lock:
                    offers.extend(got)
                    del offers[:-200]
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            r.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}", i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    log = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in client.xrange("acd:log")
    ]
    holder: dict[str, str] = {}  # call → agent holding its offer
    holding: dict[str, str] = {}  # agent → call
    answered: Counter[str] = Counter()
    per_agent: Counter[tuple[str, str]] = Counter()
    per_skill: Counter[tuple[str, str]] = Counter()
    skill_of: dict[str, str] = {}
    for ev in log:
        kind = ev["ev"]
        if kind == "enqueue":
            skill_of[ev["call"]] = ev["skill"]
            per_skill[ev["skill"], "entered"] += 1
        elif kind == "offer":
            assert ev["call"] not in holder, f"call offered twice at once: {ev}"
            assert ev["agent"] not in holding, f"agent holds two calls: {ev}"
            holder[ev["call"]], holding[ev["agent"]] = ev["agent"], ev["call"]
            per_agent[ev["agent"], "offered"] += 1
            per_skill[ev["skill"], "offered"] += 1
        elif kind == "answer":
            answered[ev["call"]] += 1
            per_agent[ev["agent"], "answered"] += 1
            per_skill[skill_of[ev["call"]], "answered"] += 1
        elif kind == "no_answer":
            del holding[holder.pop(ev["call"])]
            per_agent[ev["agent"], "no_answer"] += 1
        elif kind in ("abandon", "end"):
            if kind == "abandon":
                per_skill[ev["skill"], "abandoned"] += 1
            agent = holder.pop(ev["call"], None)
            if agent is not None:
                del holding[agent]
    assert sum(v for (_, k), v in per_skill.items() if k == "offered") > 100
    assert max(answered.values()) == 1, "a call was answered twice"
    for key in client.scan_iter("acd:n:agent:*"):
        agent = key.decode().rsplit(":", 1)[1]
        for field, value in client.hgetall(key).items():
            assert per_agent[agent, field.decode()] == int(value), (agent, field)
    for key in client.scan_iter("acd:n:skill:*"):
        skill = key.decode().rsplit(":", 1)[1]
        for field, value in client.hgetall(key).items():
            assert per_skill[skill, field.decode()] == int(value), (skill, field)


def test_random_events_with_logouts_and_breaks_get_the_same_answers_in_redis(
    client: Redis,
) -> None:
    """Logins, logouts (last specialist leaving), breaks, ring-no-answer, re-entry, ticks:
    every event gets the same offers, or the same refusal, from both implementations."""
    settings = AcdSettings(wrapup_s=5, ring_timeout_s=8, reentry_s=30)
    pure, in_redis = Policy(settings, keep_log=False), engine(client, settings)
    rng = random.Random(2024)
    skills = ["gjj", "renshe", "zonghe", "jiaotong"]
    profiles = {
        "1001": AgentProfile(skills={"gjj": 1}),
        "1002": AgentProfile(skills={"gjj": 2, "renshe": 1}),
        "1003": AgentProfile(skills={"renshe": 2}),
        "1004": AgentProfile(general=True),
        "1005": AgentProfile(skills={"jiaotong": 1}, general=True),
    }
    for agent, profile in profiles.items():
        assert pure.login(agent, profile, 0.0) == in_redis.login(agent, profile, 0.0)
    now, n_calls, compared = 0.0, 0, 0
    for _ in range(3000):
        now += rng.expovariate(1 / 2.0)
        roll = rng.random()
        agent = rng.choice(list(profiles))
        call = f"c{rng.randint(1, max(n_calls, 1))}"
        try:
            held = pure.agent_state(agent)[2] or call
        except Refused:
            held = call
        if roll < 0.25:
            n_calls += 1
            key = f"k{rng.randint(0, 5)}"
            args = ("enqueue", f"c{n_calls}", rng.choice(skills), rng.randint(0, 2), now)
            kwargs = {"reentry_key": key}
        elif roll < 0.28:
            args, kwargs = ("login", agent, profiles[agent], now), {"ready": rng.random() < 0.7}
        elif roll < 0.31:
            args, kwargs = ("logout", agent, now), {}
        elif roll < 0.51:
            args, kwargs = ("ready", agent, now), {}
        elif roll < 0.54:
            args, kwargs = ("not_ready", agent, Reason.MEETING, now), {}
        elif roll < 0.74:
            args, kwargs = ("accept", agent, held, now), {}
        elif roll < 0.78:
            args, kwargs = ("no_answer", agent, held, now), {}
        elif roll < 0.9:
            args, kwargs = ("hangup", rng.choice([call, held]), now), {}
        else:
            args, kwargs = ("tick", now), {}
        results = []
        for router in (pure, in_redis):
            try:
                results.append(getattr(router, args[0])(*args[1:], **kwargs))
            except Refused:
                results.append("refused")
        assert results[0] == results[1], (args, results)
        compared += results[0] not in ([], None, "refused")
    assert compared > 150
    for agent in profiles:
        assert pure.agent_state(agent) == in_redis.agent_state(agent)
    for n in range(1, n_calls + 1):
        assert pure.call_state(f"c{n}") == in_redis.call_state(f"c{n}")
