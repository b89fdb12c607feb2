"""A supervisor lists the waiting calls and boosts one from the console
(``console/acd_calls.py``), against a real redis-server: the calls are queued by a real
``RedisEngine``; the console only reads the queues and appends a command; the test applies
it to the engine (the router's part) and sees the call move to the head of its queue."""

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
from hotline.privacy import CallerKey


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


# -- the list of waiting calls (GET /api/acd/calls) --------------------------------------

LIST = "/api/acd/calls"


async def test_supervisor_sees_the_waiting_calls_by_seat_and_place_and_the_list_is_audited(
    api, engine: RedisEngine
) -> None:
    now = time.time()
    engine.login("1001", AgentProfile(skills={"renshe": 1}), now)
    engine.enqueue("1700.20", "renshe", 0, now - 5)  # offered at once: ringing, not waiting
    engine.enqueue("1700.21", "gjj", 0, now - 50)
    engine.enqueue("1700.22", "gjj", 3, now - 10)  # 3 × 20 s of head start: ahead of it
    engine.enqueue("1700.23", "zonghe", 0, now - 30)
    engine.callback("1700.23", now - 20)  # booked a callback: keeps its place
    sup = await api.as_("sup")
    r = await api.client.get(LIST, headers=sup)
    assert r.status_code == 200, r.text
    body = r.json()
    rows = [(c["call"], c["skill"], c["seat"], c["place"], c["priority"], c["callback"])
            for c in body["calls"]]  # fmt: skip
    assert rows == [
        ("1700.22", "gjj", "公积金专席", 1, 3, False),
        ("1700.21", "gjj", "公积金专席", 2, 0, False),
        ("1700.23", "zonghe", "综合席", 1, 0, True),
    ]
    waited = {c["call"]: c["waited_s"] for c in body["calls"]}
    assert waited["1700.21"] == pytest.approx(50, abs=5)
    assert waited["1700.22"] == pytest.approx(10, abs=5)
    assert (body["total"], body["max_priority"]) == (3, 9)
    [entry] = [a for a in api.access.audit(20) if a["action"] == "GET /api/acd/calls"]
    assert (entry["who"], entry["outcome"], entry["detail"]) == (
        "sup", 200, "3 of 3 waiting calls listed")  # fmt: skip


async def test_the_list_holds_nothing_of_the_callers_number(
    api, engine: RedisEngine, acd_redis_port
) -> None:
    """The caller's number is behind the re-entry key, the callback token and the channel;
    a field with the number itself is planted in the call's hash (a careless future writer):
    none of it, nor the number in any form, comes out."""
    number, key = "13912345678", CallerKey(b"k" * 32)
    now = time.time()
    engine.enqueue("1700.30", "gjj", 0, now - 40, reentry_key=key.hash(number))
    engine.callback("1700.30", now - 30)
    with Redis(port=acd_redis_port) as r:
        r.hset("acd:cbnum", "1700.30", key.encrypt(number))
        r.hset("acd:chan", "1700.30", "PJSIP/carrier-00000007")
        r.hset("acd:c:1700.30", mapping={"num": number, "cid": f'"{number}" <{number}>'})
    sup = await api.as_("sup")
    r = await api.client.get(LIST, headers=sup)
    assert r.status_code == 200, r.text
    [call] = r.json()["calls"]
    assert set(call) == {"call", "skill", "seat", "place", "waited_s", "priority", "callback"}
    for secret in (number, number[-4:], number[3:7], key.hash(number), "carrier"):
        assert secret not in r.text, secret


async def test_only_supervisors_see_the_waiting_calls(api, engine: RedisEngine) -> None:
    engine.enqueue("1700.40", "gjj", 0, time.time())
    for who in ("a1002", "qa1"):
        r = await api.client.get(LIST, headers=await api.as_(who))
        assert r.status_code == 403 and "1700.40" not in r.text
        assert "needs supervisor" in r.json()["detail"]
    r = await api.client.get(LIST)
    assert r.status_code == 401 and "1700.40" not in r.text
    refused = [a["outcome"] for a in api.access.audit(20) if a["action"] == "GET /api/acd/calls"]
    assert sorted(refused) == [401, 403, 403]


async def test_malformed_call_ids_in_the_queue_are_not_listed_nor_boostable(
    api, engine: RedisEngine, acd_redis_port
) -> None:
    """Members no engine call could have (it checks every id) are left out of the list; the
    boost refuses such ids with 422 and sends nothing."""
    now = time.time()
    engine.enqueue("1700.50", "gjj", 0, now - 20)
    hostile = ["<img src=x onerror=alert(1)>", "1700.51\r\nX-Injected: 1", "../../etc", ""]
    with Redis(port=acd_redis_port) as r:
        for i, member in enumerate(hostile):
            r.zadd("acd:q:gjj:0", {member: now - 100 - i})
            r.hset(f"acd:c:{member}", mapping={"st": "waiting", "sk": "gjj", "pr": "0",
                                                "arr": repr(now - 100)})  # fmt: skip
    sup = await api.as_("sup")
    r = await api.client.get(LIST, headers=sup)
    assert r.status_code == 200, r.text
    assert [(c["call"], c["place"]) for c in r.json()["calls"]] == [("1700.50", 5)]
    assert "<img" not in r.text and "Injected" not in r.text
    for bad in ("%3Cimg%20src%3Dx%3E", "1700.51%0D%0AX", "..%2F..", "a" * 65):
        post = await api.client.post(url(bad), json={"priority": 1}, headers=sup)
        assert post.status_code in (404, 422), (bad, post.status_code)
    assert sent(acd_redis_port) == []


async def test_the_list_is_cut_at_500_calls_and_says_how_many_wait(
    api, engine: RedisEngine
) -> None:
    now = time.time()
    for i in range(320):
        engine.enqueue(f"1701.{i}", "gjj", 0, now - 1000 + i)
    for i in range(200):
        engine.enqueue(f"1702.{i}", "zonghe", 0, now - 1000 + i)
    sup = await api.as_("sup")
    r = await api.client.get(LIST, headers=sup)
    assert r.status_code == 200
    body = r.json()
    assert (len(body["calls"]), body["total"]) == (500, 520)
    assert body["calls"][319]["call"] == "1701.319" and body["calls"][320]["place"] == 1
    assert body["calls"][-1]["call"] == "1702.179"


async def test_redis_down_the_list_says_so(config, tmp_path) -> None:  # noqa: F811
    from redis_kit import free_port

    async with console(on_redis(config, free_port()), tmp_path) as api:
        r = await api.client.get(LIST, headers=await api.as_("sup"))
        assert r.status_code == 503
        assert r.json()["detail"].startswith("排队服务不可用")
        assert "cannot be read" in r.json()["detail"]
