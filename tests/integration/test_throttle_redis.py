"""Repeat-caller throttling (第二十九条) against a real redis-server, with a fake clock.

Each scenario is a caller ringing the hotline again and again: the IVR asks ``decide()``
before the menu, counts the call, and reports its end (duration, whether a demand was
registered).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis import Redis as SyncRedis

from callers.policy import CallerPolicy
from callers.throttle import Decision, Throttle
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.config import ThrottleLimits
from hotline.privacy import CallerKey
from tickets.sqlite import SqliteTicketStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

CALLER = "13800001111"
SECRET = b"test-secret-0123456789"
T0 = 1_795_000_000.0  # 2026-11-18, a fixed instant: the clock is ours


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throw-away redis-server on a free loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = SyncRedis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 5
        while True:
            try:
                self.client.ping()
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.client.close()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, *, minutes: float = 0, hours: float = 0, days: float = 0) -> None:
        self.now += minutes * 60 + hours * 3600 + days * 86400


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


SETTINGS = ThrottleSettings(
    warning=ThrottleLimits(
        calls_per_hour=3, calls_per_day=6, minutes_per_day=30, no_demand_per_day=4,
        harassment_flags=1,
    ),
    suspension=ThrottleLimits(
        calls_per_hour=5, calls_per_day=10, minutes_per_day=60, no_demand_per_day=8,
        harassment_flags=2,
    ),
    grace_minutes=5,
    suspension_minutes=120,
    referral_after=2,
    referral_window_days=30,
    allow_list=("0571-87001234",),
    failure_cooldown_ms=200,
)  # fmt: skip


def make_throttle(port: int, clock: Clock, settings: ThrottleSettings = SETTINGS) -> Throttle:
    return Throttle(
        settings, RedisSettings(port=port), CallerKey(b"test-secret-0123456789"), clock=clock
    )


@pytest.fixture
async def throttle(server: RedisServer, clock: Clock) -> AsyncIterator[Throttle]:
    server.client.flushall()
    t = make_throttle(server.port, clock)
    yield t
    await t.close()


async def ring(t: Throttle, clock: Clock, n: int, caller: str = CALLER, *, every_min: float = 3,
               seconds: float = 40, had_demand: bool = False) -> list[Decision]:  # fmt: skip
    """The caller rings ``n`` times, ``every_min`` minutes apart; returns each decision."""
    out = []
    for _ in range(n):
        call_id = f"call-{clock.now:.0f}"
        d = await t.decide(caller, call_id)
        out.append(d)
        if d.stage != "suspended":
            await t.record_call_start(caller, call_id)
            await t.record_call_end(caller, call_id, seconds, had_demand)
        clock.advance(minutes=every_min)
    return out


async def test_repeat_caller_is_warned_then_suspended_then_gets_through_after_suspension(
    throttle: Throttle, clock: Clock
) -> None:
    stages = [d.stage for d in await ring(throttle, clock, 8)]
    # calls 1-3 normal; the 4th (3 calls in the hour) is warned; at the 6th call 5 calls
    # are in the hour and the first warning is 6 minutes old (≥ grace 5) → suspended.
    # Calls 7 and 8 are refused while suspended.
    assert stages[:3] == ["normal"] * 3
    assert stages[3:5] == ["warning"] * 2
    assert stages[5:] == ["suspended"] * 3
    suspended = await throttle.decide(CALLER)
    assert suspended.suspended_until is not None
    assert suspended.suspended_until == pytest.approx(T0 + 5 * 180 + 120 * 60)
    clock.advance(minutes=121)
    after = await throttle.decide(CALLER)
    assert after.stage == "normal"
    assert after.counters["calls_hour"] == 0


async def test_warning_comes_first_and_suspension_waits_for_the_grace_time(
    throttle: Throttle, clock: Clock
) -> None:
    # Six calls in six minutes: over the suspension limit, but the caller was only warned
    # at the 4th call, 3 minutes ago — less than the 5 minutes of 合理时间.
    decisions = await ring(throttle, clock, 6, every_min=1)
    assert [d.stage for d in decisions] == ["normal"] * 3 + ["warning"] * 3
    assert decisions[5].counters["calls_hour"] == 5
    clock.advance(minutes=2)
    assert (await throttle.decide(CALLER)).stage == "suspended"


async def test_the_hour_window_slides(throttle: Throttle, clock: Clock) -> None:
    # calls at T0, T0 + 10 min and T0 + 20 min; the hour is twelve 5-minute buckets
    await ring(throttle, clock, 3, every_min=10)
    assert (await throttle.decide(CALLER, dry=True)).counters["calls_hour"] == 3
    clock.advance(minutes=35)  # T0 + 65 min: the first call has left the hour
    assert (await throttle.decide(CALLER, dry=True)).counters["calls_hour"] == 2
    clock.advance(minutes=15)  # T0 + 80 min: the last call was 60 min ago, all have left
    d = await throttle.decide(CALLER, dry=True)
    assert d.counters["calls_hour"] == 0
    assert d.counters["calls_day"] == 3
    clock.advance(hours=24)
    d = await throttle.decide(CALLER)
    assert d.counters["calls_day"] == 0
    assert d.stage == "normal"


async def test_long_calls_without_a_demand_are_counted_in_minutes(
    throttle: Throttle, clock: Clock
) -> None:
    # Two 20-minute calls with a registered demand: 40 minutes occupied ≥ 30 → warning.
    await ring(throttle, clock, 2, every_min=90, seconds=20 * 60, had_demand=True)
    d = await throttle.decide(CALLER)
    assert d.counters["minutes_day"] == pytest.approx(40)
    assert d.counters["no_demand_day"] == 0
    assert d.stage == "warning"
    assert d.reasons == ("minutes_day>=30",)


async def test_agent_harassment_flags_warn_then_suspend(throttle: Throttle, clock: Clock) -> None:
    assert await throttle.flag_harassment(CALLER, by="agent1008", note="辱骂坐席") == 1
    d = await throttle.decide(CALLER)
    assert (d.stage, d.reasons) == ("warning", ("harassment_flags>=1",))
    clock.advance(minutes=10)
    assert await throttle.flag_harassment(CALLER, by="agent1009", note="提醒后仍谩骂") == 2
    d = await throttle.decide(CALLER)
    assert d.stage == "suspended"
    assert "harassment_flags>=2" in d.reasons


async def test_repeated_suspensions_list_the_caller_for_referral(
    throttle: Throttle, clock: Clock
) -> None:
    assert await throttle.referrals() == []
    for _ in range(2):
        await ring(throttle, clock, 6)
        assert (await throttle.decide(CALLER)).stage == "suspended"
        clock.advance(minutes=121)
    referrals = await throttle.referrals()
    assert len(referrals) == 1
    assert referrals[0].suspensions == 2
    assert referrals[0].caller_masked == "138****1111"
    events = [r.event for r in await throttle.audit(CALLER)]
    assert events.count("suspension") == 2
    assert events.count("referral") == 1


async def test_calls_while_suspended_are_not_counted(throttle: Throttle, clock: Clock) -> None:
    await ring(throttle, clock, 6)
    for i in range(20):
        assert await throttle.record_call_start(CALLER, f"blocked-{i}") is False
    clock.advance(minutes=121)
    assert (await throttle.decide(CALLER)).counters["calls_day"] == 0


async def test_a_call_is_counted_once(throttle: Throttle, clock: Clock) -> None:
    assert await throttle.record_call_start(CALLER, "c1") is True
    assert await throttle.record_call_start(CALLER, "c1") is False
    assert await throttle.record_call_end(CALLER, "c1", 30, had_demand=False) is True
    assert await throttle.record_call_end(CALLER, "c1", 30, had_demand=False) is False
    d = await throttle.decide(CALLER)
    assert (d.counters["calls_day"], d.counters["no_demand_day"]) == (1, 1)
    assert d.counters["minutes_day"] == pytest.approx(0.5)


async def test_allow_listed_number_is_never_throttled(
    throttle: Throttle, clock: Clock, server: RedisServer
) -> None:
    for number in ("057187001234", "+86 571 8700 1234"):
        decisions = await ring(throttle, clock, 15, number, every_min=1)
        assert {d.stage for d in decisions} == {"normal"}
        assert all(d.reasons == ("allow-listed",) for d in decisions)
    assert server.client.dbsize() == 0


async def test_withheld_numbers_are_never_throttled_as_one_caller(
    throttle: Throttle, clock: Clock, server: RedisServer
) -> None:
    for number in ("", "anonymous", "unknown", "Restricted", "Anonymous", "abc123"):
        decisions = await ring(throttle, clock, 10, number, every_min=1)
        assert {d.stage for d in decisions} == {"normal"}
        assert {d.reasons for d in decisions} == {("withheld",)}
    assert server.client.dbsize() == 0


async def test_manual_lift_lets_a_suspended_caller_through_and_is_audited(
    throttle: Throttle, clock: Clock
) -> None:
    await ring(throttle, clock, 6)
    assert (await throttle.decide(CALLER)).stage == "suspended"
    with pytest.raises(ValueError):
        await throttle.lift(CALLER, by="supervisor7", why="  ")
    with pytest.raises(ValueError):
        await throttle.lift("anonymous", by="supervisor7", why="误判")
    assert await throttle.lift(CALLER, by="supervisor7", why="独居老人，确有诉求") == "suspended"
    assert (await throttle.decide(CALLER)).stage == "normal"
    lift = (await throttle.audit(CALLER))[0]
    assert (lift.event, lift.by) == ("lift", "supervisor7")
    assert "独居老人" in lift.why


async def test_audit_records_say_who_when_why_and_which_counters(
    throttle: Throttle, clock: Clock
) -> None:
    await ring(throttle, clock, 6)
    records = await throttle.audit(CALLER)
    assert [r.event for r in records] == ["suspension", "warning", "warning"]
    suspension, _, first_warning = records
    assert first_warning.at == T0 + 3 * 180
    assert first_warning.call_id == f"call-{T0 + 3 * 180:.0f}"
    assert first_warning.by == "system"
    assert first_warning.why == "calls_hour>=3"
    assert first_warning.counters["calls_hour"] == 3
    assert suspension.counters["calls_hour"] == 5
    assert suspension.caller_masked == "138****1111"
    everyone = await throttle.audit()
    assert [r.id for r in everyone] == [r.id for r in records]


async def test_dry_decision_neither_warns_nor_audits(throttle: Throttle, clock: Clock) -> None:
    await ring(throttle, clock, 3)
    d = await throttle.decide(CALLER, dry=True)
    assert d.stage == "warning"
    assert await throttle.audit(CALLER) == []


async def test_no_caller_number_is_stored_in_redis(
    throttle: Throttle, clock: Clock, server: RedisServer
) -> None:
    await ring(throttle, clock, 6)
    await throttle.flag_harassment(CALLER, by="agent1008", note="骚扰")
    dump = []
    for key in server.client.scan_iter():
        dump.append(key)
        kind = server.client.type(key)
        if kind == "hash":
            dump += [f"{k}={v}" for k, v in server.client.hgetall(key).items()]
        elif kind == "stream":
            dump += [str(f) for _, f in server.client.xrange(key)]
        elif kind == "zset":
            dump += [m for m, _ in server.client.zrange(key, 0, -1, withscores=True)]
    assert dump
    assert not any(CALLER in item or "00001111" in item for item in dump)


async def test_redis_stopped_mid_run_fails_open_quickly(clock: Clock) -> None:
    srv = RedisServer()
    t = make_throttle(srv.port, clock)
    try:
        await ring(t, clock, 4)
        assert (await t.decide(CALLER)).stage == "warning"
        srv.stop()
        for _ in range(3):
            start = time.perf_counter()
            d = await t.decide(CALLER)
            elapsed = time.perf_counter() - start
            assert (d.stage, d.failed_open) == ("normal", True)
            assert elapsed < 0.1
        assert await t.record_call_start(CALLER, "during-outage") is False
        assert t.failures >= 1
    finally:
        srv.stop()
        await t.close()


async def test_slow_redis_fails_open_within_the_timeout(server: RedisServer, clock: Clock) -> None:
    server.client.flushall()
    t = make_throttle(server.port, clock)
    try:
        await ring(t, clock, 4)
        assert (await t.decide(CALLER)).stage == "warning"
        server.client.execute_command("CLIENT", "PAUSE", "600", "ALL")
        start = time.perf_counter()
        d = await t.decide(CALLER)
        elapsed = time.perf_counter() - start
        assert (d.stage, d.failed_open) == ("normal", True)
        assert elapsed < 0.1  # timeout_ms is 50
        await asyncio.sleep(0.7)  # pause over, cool-down (200 ms) over
        d = await t.decide(CALLER)
        assert (d.stage, d.failed_open) == ("warning", False)
    finally:
        server.client.execute_command("CLIENT", "UNPAUSE")
        await t.close()


async def test_caller_with_an_open_demand_hears_progress_then_is_warned_for_ringing_again(
    server: RedisServer, clock: Clock, tmp_path: Path
) -> None:
    server.client.flushall()
    day = [datetime(2026, 11, 18, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))]
    store = SqliteTicketStore(tmp_path / "t.sqlite3", CallerKey(b"k" * 32), clock=lambda: day[0])
    ticket = await store.create(
        {"caller": CALLER, "call_id": "first", "seat": "gjj", "summary": "公积金提取"}
    )
    day[0] += timedelta(days=2)
    policy = CallerPolicy(make_throttle(server.port, clock), store)
    try:
        flags = []
        for i in range(5):
            screen = await policy.screen(CALLER, f"again-{i}")
            flags.append(screen.flag)
            assert [t["id"] for t in screen.open_tickets] == [ticket.id]
            assert "caller" not in screen.open_tickets[0]
            await policy.call_ended(CALLER, f"again-{i}", 50, had_demand=False)
            clock.advance(minutes=3)
        assert flags == ["normal"] * 3 + ["warning"] * 2
    finally:
        await policy.close()


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_PII_KEY": SECRET.hex()}
    return subprocess.run(
        [sys.executable, "-m", "callers", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


async def test_supervisor_lifts_a_suspension_from_the_command_line(
    throttle: Throttle, clock: Clock, server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "hotline.yaml"
    text = (Path(__file__).resolve().parents[2] / "hotline.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("port: 6390", f"port: {server.port}"), encoding="utf-8")
    clock.now = time.time() - 30 * 60  # the CLI runs on the real clock
    await ring(throttle, clock, 6)
    assert (await throttle.decide(CALLER)).stage == "suspended"
    status = _cli(config, "status", CALLER)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stage"] == "suspended"
    bad = _cli(config, "lift", "anonymous", "--by", "张班长", "--why", "误判")
    assert bad.returncode == 2 and "not a caller number" in bad.stderr
    lifted = _cli(config, "lift", CALLER, "--by", "张班长", "--why", "独居老人，确有诉求")
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout) == {"lifted": True, "was": "suspended"}
    assert (await throttle.decide(CALLER)).stage == "normal"
    audit = _cli(config, "audit", CALLER, "--count", "1")
    assert json.loads(audit.stdout)["by"] == "张班长"
    down = tmp_path / "down.yaml"
    down.write_text(text.replace("port: 6390", f"port: {_free_port()}"), encoding="utf-8")
    refused = _cli(down, "referrals")
    assert refused.returncode == 1 and "Redis" in refused.stderr
