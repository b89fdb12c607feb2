"""A supervisor boosts a waiting call from the console (``console/acd_calls.py``), against a
real redis-server: the console only appends a command; the test applies it to a real
``RedisEngine`` (the router's part) and sees the call move to the head of its queue."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from redis import Redis
from test_console_agent_state import Console, config, console, on_redis  # noqa: F401 (fixture)

from acd.call_commands import PriorityCommand
from acd.commands import STREAM
from acd.engine import RedisEngine
from acd.settings import AgentProfile


@pytest.fixture
async def api(config, tmp_path, acd_redis_port) -> AsyncIterator[Console]:  # noqa: F811
    async with console(on_redis(config, acd_redis_port), tmp_path) as c:
        yield c


def sent(port: int) -> list[dict[bytes, bytes]]:
    with Redis(port=port) as r:
        return [raw for _, raw in r.xrange(STREAM)]


def url(call: str) -> str:
    return f"/api/acd/calls/{call}/priority"


async def test_supervisor_boosts_a_waiting_call_which_moves_ahead_and_is_audited(
    api, engine: RedisEngine, acd_redis_port
) -> None:
    now = time.time()
    engine.enqueue("1700.1", "gjj", 0, now - 10)
    engine.enqueue("1700.2", "gjj", 0, now)
    sup = await api.as_("sup")
    r = await api.client.post(url("1700.2"), json={"priority": 2}, headers=sup)
    assert r.status_code == 202, r.text
    assert (r.json()["call"], r.json()["priority"], r.json()["by"]) == ("1700.2", 2, "sup")
    [raw] = sent(acd_redis_port)
    cmd = PriorityCommand.parse(raw)  # the router's part
    engine.reprioritize(cmd.call_id, cmd.priority, time.time(), by=cmd.by)
    assert engine.position("1700.2") == 1
    [entry] = [a for a in api.access.audit(20) if a["action"].endswith("/priority")]
    assert entry["who"] == "sup" and entry["detail"] == "call 1700.2 priority 2 by supervisor"
    when = datetime.fromisoformat(entry["at"]).timestamp()
    assert when == pytest.approx(time.time(), abs=60)


@pytest.mark.parametrize(
    "body",
    [
        {"priority": "2"},
        {"priority": 2.5},
        {"priority": True},
        {"priority": -1},
        {"priority": 10**12},
        {"priority": 10},  # over acd.max_priority (9)
        {"priority": 2, "by": "someone else"},
        {},
        [2],
    ],
)
async def test_hostile_bodies_are_refused_and_nothing_is_sent(
    api, engine: RedisEngine, acd_redis_port, body: object
) -> None:
    engine.enqueue("1700.1", "gjj", 0, time.time())
    sup = await api.as_("sup")
    r = await api.client.post(url("1700.1"), json=body, headers=sup)
    assert r.status_code == 422, r.text
    assert sent(acd_redis_port) == []


async def test_malformed_or_unknown_or_ringing_calls_and_other_roles_are_refused(
    api, engine: RedisEngine, acd_redis_port
) -> None:
    now = time.time()
    engine.login("1002", AgentProfile(skills={"gjj": 1}), now)
    engine.enqueue("1700.3", "gjj", 0, now)  # offered at once: ringing, not waiting
    sup = await api.as_("sup")
    body = {"priority": 1}
    assert (await api.client.post(url("1700.3"), json=body, headers=sup)).status_code == 409
    assert (await api.client.post(url("9999.9"), json=body, headers=sup)).status_code == 409
    r = await api.client.post(url("1700.3%0D%0Ax"), json=body, headers=sup)
    assert r.status_code == 422
    for who, status in (("a1002", 403), ("qa1", 403)):
        headers = await api.as_(who)
        assert (await api.client.post(url("1700.3"), json=body, headers=headers)).status_code == (
            status
        )
    assert (await api.client.post(url("1700.3"), json=body)).status_code == 401
    assert sent(acd_redis_port) == []


async def test_redis_down_says_so_and_sends_nothing(config, tmp_path) -> None:  # noqa: F811
    from redis_kit import free_port

    async with console(on_redis(config, free_port()), tmp_path) as api:
        sup = await api.as_("sup")
        r = await api.client.post(url("1700.1"), json={"priority": 1}, headers=sup)
        assert r.status_code == 503 and "nothing was sent" in r.json()["detail"]
