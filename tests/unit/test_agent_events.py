"""Agents' state history for reports: the ACD's log (a real ``RedisEngine`` on a real
redis-server) copied into the call records' store, kept once, trimmed after, and summed
into time per state and not-ready reason."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis as AsyncRedis

from acd.agent_log import LOG, agent_view
from acd.engine import RedisEngine
from acd.settings import AgentProfile
from calls.agent_events import AgentLogKeeper, agent_state_durations
from calls.store import SqliteCallStore

GJJ = AgentProfile(skills={"gjj": 1})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteCallStore]:
    s = SqliteCallStore(tmp_path / "calls.sqlite3")
    yield s
    await s.close()


def a_shift(engine: RedisEngine) -> None:
    """Agent 1002: ready at 1000, a break 1100–1160, a 公积金 call offered at 1200, answered
    at 1205, hung up at 1305, 15 s wrap-up, ready again at 1320."""
    engine.login("1002", GJJ, 1000.0)
    engine.not_ready("1002", "break", 1100.0)
    engine.ready("1002", 1160.0)
    engine.enqueue("call-1", "gjj", 0, 1200.0)
    engine.accept("1002", "call-1", 1205.0)
    engine.hangup("call-1", 1305.0)
    engine.tick(1320.0)


async def keep_all(keeper: AgentLogKeeper) -> None:
    while await keeper.poll(block=False):
        pass


async def test_a_shift_is_kept_and_summed_per_state_and_reason(engine, redis, store) -> None:
    a_shift(engine)
    keeper = AgentLogKeeper(redis, store, keep_s=0)
    await keep_all(keeper)
    spent = await agent_state_durations(store, "1002", 1050.0, 1400.0, now=2000.0)
    assert spent.states == {"ready": 50 + 40 + 80, "not_ready": 60, "reserved": 5,
                            "on_call": 100, "wrapup": 15}  # fmt: skip
    assert spent.not_ready == {"break": 60}
    whole = await agent_state_durations(store, "1002", 0.0, 1400.0, now=1350.0)
    assert sum(whole.states.values()) == 350  # from the first change to "now"
    assert await agent_state_durations(store, "1003", 0.0, 1400.0, now=2000.0) == type(spent)()


async def test_each_entry_is_kept_once_and_the_log_is_trimmed_after(
    engine, redis, store, tmp_path
) -> None:
    a_shift(engine)
    total = await redis.xlen(LOG)
    keeper = AgentLogKeeper(redis, store, keep_s=0)
    await keep_all(keeper)
    assert keeper.kept == total
    assert await redis.xlen(LOG) == 1  # trimmed up to the last entry kept
    engine.not_ready("1002", "meeting", 1400.0)
    await keep_all(AgentLogKeeper(redis, store, keep_s=0))  # a restarted keeper goes on
    again = AgentLogKeeper(redis, SqliteCallStore(tmp_path / "calls.sqlite3"), keep_s=0)
    await again.store.keep_agent_events(LOG, [], "0-0")  # as if the position were lost
    await keep_all(again)
    assert again.kept == 0  # the entries still in the log were kept before
    await again.store.close()
    spent = await agent_state_durations(store, "1002", 1000.0, 1500.0, now=1500.0)
    assert spent.not_ready == {"break": 60, "meeting": 100}


async def test_recent_log_stays_for_live_readers(engine, redis, store) -> None:
    a_shift(engine)
    total = await redis.xlen(LOG)
    await keep_all(AgentLogKeeper(redis, store))  # keeps the last 10 minutes in Redis
    assert await redis.xlen(LOG) == total


async def test_a_malformed_entry_is_refused_with_a_log_line_and_not_kept(
    engine, redis, store, caplog
) -> None:
    engine.login("1002", GJJ, 1000.0)
    await redis.xadd(LOG, {"t": "1001", "ev": "state", "agent": "1002", "state": "asleep"})
    await redis.xadd(LOG, {"t": "1e400", "ev": "state", "agent": "1002", "state": "ready"})
    engine.not_ready("1002", "training", 1010.0)
    keeper = AgentLogKeeper(redis, store, keep_s=0)
    with caplog.at_level(logging.WARNING, "calls.agent_events"):
        await keep_all(keeper)
    assert keeper.refused == 2
    refusals = [r.message for r in caplog.records if "refused" in r.message]
    assert len(refusals) == 2 and "asleep" in refusals[0] and "out of range" in refusals[1]
    spent = await agent_state_durations(store, "1002", 1000.0, 1020.0, now=1020.0)
    assert spent.states == {"ready": 10, "not_ready": 10}


async def test_redis_down_the_keeper_waits_and_loses_nothing(store) -> None:
    from redis_kit import free_port

    down = AsyncRedis(port=free_port(), socket_connect_timeout=0.2)
    with pytest.raises(Exception, match=r"(?i)connect"):
        await AgentLogKeeper(down, store).poll(block=False)
    assert await store.stream_position(LOG) == "0-0"
    await down.aclose()


async def test_the_console_shows_since_from_the_kept_history_once_the_log_is_trimmed(
    engine, redis, store
) -> None:
    now = time.time()
    engine.login("1002", GJJ, now - 3600)
    engine.not_ready("1002", "meeting", now - 1800)
    await keep_all(AgentLogKeeper(redis, store, keep_s=0))
    await redis.delete(LOG)  # every change of the agent is only in the store now
    assert (await agent_view(redis, "1002")).since is None
    view = await agent_view(redis, "1002", history=store.last_agent_state)
    assert (view.state, view.reason, view.since) == ("not_ready", "meeting", now - 1800)
