"""Agents change and see their ACD state through the console (``console/agent_state.py``),
against a real redis-server: the console only appends commands to ``acd:commands``; where a
test needs the state to change, it applies the command to a real ``RedisEngine`` itself
(the ACD router's part)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from redis import Redis
from redis_kit import free_port

from access import AccessStore
from acd.agent_log import BadEntry, agent_view, parse_entry
from acd.commands import STREAM, AgentCommand, Op
from acd.engine import RedisEngine
from acd.settings import AgentProfile
from console.agent_state import AgentDesk
from console.app import Services, make_app
from console.feed import FeedHub
from hotline.config import HotlineConfig, load_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "agent-state-password"


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    text = text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3"))
    path.write_text(text.replace("run/calls.sqlite3", str(tmp_path / "calls.sqlite3")))
    return load_config(path)


class Console:
    def __init__(self, client: httpx.AsyncClient, access: AccessStore) -> None:
        self.client, self.access = client, access

    async def as_(self, name: str) -> dict[str, str]:
        r = await self.client.post(
            "/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
        )
        assert r.status_code == 200, r.text
        self.client.cookies.clear()  # the bearer token alone says who asks
        return {"Authorization": "Bearer " + r.json()["token"]}


def on_redis(config: HotlineConfig, port: int) -> HotlineConfig:
    """``config`` with its Redis at ``port`` (the test's redis-server has no password)."""
    redis = config.redis.model_copy(update={"port": port, "password": None})
    return config.model_copy(update={"redis": redis})


@asynccontextmanager
async def console(config: HotlineConfig, tmp_path: Path) -> AsyncIterator[Console]:
    """The console app over httpx, with an agent 1002, an agent 1003, a supervisor and QA."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    for name, role, agent in (("a1002", "agent", "1002"), ("a1003", "agent", "1003"),
                              ("sup", "supervisor", None), ("qa1", "qa", None)):  # fmt: skip
        access.add_user(name, PASSWORD, role, agent)
    app = make_app(config, Services(hub=FeedHub()), access=access)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield Console(client, access)
    access.close()


@pytest.fixture
async def api(config, tmp_path, acd_redis_port) -> AsyncIterator[Console]:
    async with console(on_redis(config, acd_redis_port), tmp_path) as c:
        yield c


def commands(acd_redis_port: int) -> list[AgentCommand]:
    with Redis(port=acd_redis_port) as r:
        return [AgentCommand.parse(raw) for _, raw in r.xrange(STREAM)]


def apply(engine: RedisEngine, cmd: AgentCommand) -> None:
    """The ACD router's part: one command applied to the engine."""
    now = time.time()
    if cmd.op is Op.LOGIN:
        engine.login(cmd.agent_id, AgentProfile(skills={"gjj": 1}), now, ready=False)
    elif cmd.op is Op.READY:
        engine.ready(cmd.agent_id, now)
    elif cmd.op is Op.NOT_READY:
        assert cmd.reason is not None
        engine.not_ready(cmd.agent_id, cmd.reason, now)
    else:
        engine.logout(cmd.agent_id, now)


async def test_agent_signs_in_goes_on_break_and_sees_each_state(
    api, engine, acd_redis_port
) -> None:
    c = api.client
    me = await api.as_("a1002")
    r = await c.get("/api/agents/1002/state", headers=me)
    assert r.status_code == 200
    assert r.json() == {"agent": "1002", "state": "logged_out", "reason": None, "call": None,
                        "since": None}  # fmt: skip

    r = await c.post("/api/agents/1002/login", headers=me)
    assert r.status_code == 202
    sent = r.json()
    assert (sent["op"], sent["agent"], sent["source"], sent["by"]) == (
        "login", "1002", "console", "a1002")  # fmt: skip
    [cmd] = commands(acd_redis_port)
    assert (cmd.op, cmd.agent_id, cmd.source, cmd.by) == ("login", "1002", "console", "a1002")
    apply(engine, cmd)

    r = await c.post("/api/agents/1002/ready", headers=me)
    assert r.status_code == 202
    apply(engine, commands(acd_redis_port)[-1])
    state = (await c.get("/api/agents/1002/state", headers=me)).json()
    assert state["state"] == "ready" and state["since"] == pytest.approx(time.time(), abs=10)

    r = await c.post("/api/agents/1002/not-ready", json={"reason": "break"}, headers=me)
    assert r.status_code == 202 and r.json()["reason"] == "break"
    cmd = commands(acd_redis_port)[-1]
    assert (cmd.op, cmd.reason) == ("not_ready", "break")
    apply(engine, cmd)
    state = (await c.get("/api/agents/1002/state", headers=me)).json()
    assert (state["state"], state["reason"]) == ("not_ready", "break")


async def test_a_bad_reason_is_refused_naming_the_field_and_nothing_is_sent(
    api, engine, acd_redis_port
) -> None:
    me = await api.as_("a1002")
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())
    for body in ({"reason": "no_answer"}, {"reason": "lunch"}, {}, {"reason": "break", "x": 1}):
        r = await api.client.post("/api/agents/1002/not-ready", json=body, headers=me)
        detail = r.json()["detail"]
        assert r.status_code == 422 and ("reason" in detail or "body.x" in detail), detail
    assert commands(acd_redis_port) == []


async def test_an_agent_cannot_change_another_agents_state(api, engine, acd_redis_port) -> None:
    other = await api.as_("a1003")
    qa = await api.as_("qa1")
    for headers, status in ((other, 403), (qa, 403), ({}, 401)):
        r = await api.client.post("/api/agents/1002/login", headers=headers)
        assert r.status_code == status
        assert (await api.client.get("/api/agents/1002/state", headers=headers)).status_code == (
            status
        )
    sup = await api.as_("sup")
    r = await api.client.post("/api/agents/9999/login", headers=sup)
    assert r.status_code == 404
    assert commands(acd_redis_port) == []


async def test_a_supervisor_sets_an_agent_not_ready_and_the_audit_log_says_so(
    api, engine, acd_redis_port
) -> None:
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())
    sup = await api.as_("sup")
    r = await api.client.post("/api/agents/1002/not-ready", json={"reason": "meeting"}, headers=sup)
    assert r.status_code == 202
    [cmd] = commands(acd_redis_port)
    assert (cmd.source, cmd.by, cmd.reason) == ("supervisor", "sup", "meeting")
    [entry] = [a for a in api.access.audit(20) if a["action"].endswith("/not-ready")]
    assert entry["who"] == "sup" and "by supervisor" in entry["detail"]
    assert "agent_id=1002" in entry["target"]
    me = await api.as_("a1002")
    await api.client.post("/api/agents/1002/ready", headers=me)
    [own] = [a for a in api.access.audit(20) if a["action"].endswith("/ready")]
    assert own["who"] == "a1002" and not own["detail"]


async def test_a_command_that_does_not_fit_the_state_is_refused_with_409(
    api, engine, acd_redis_port
) -> None:
    me = await api.as_("a1002")
    for op in ("ready", "logout"):
        r = await api.client.post(f"/api/agents/1002/{op}", headers=me)
        assert r.status_code == 409 and "logged_out" in r.json()["detail"]
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())
    assert (await api.client.post("/api/agents/1002/login", headers=me)).status_code == 409
    assert commands(acd_redis_port) == []


async def test_redis_down_answers_503_with_a_clear_message(config, tmp_path) -> None:
    async with console(on_redis(config, free_port()), tmp_path) as api:
        me = await api.as_("a1002")
        for method, path in (("GET", "state"), ("POST", "login"), ("POST", "ready")):
            r = await api.client.request(method, f"/api/agents/1002/{path}", headers=me)
            assert r.status_code == 503, r.text
            assert "Redis" in r.json()["detail"]


async def test_the_agents_feed_gets_each_state_change_from_the_log(engine, redis) -> None:
    hub = FeedHub()
    desk = AgentDesk(None, hub, redis)  # type: ignore[arg-type]
    q = hub.subscribe("1002")
    stop = asyncio.Event()
    task = asyncio.create_task(desk.follow(stop))
    await asyncio.sleep(0.2)  # the follower reads from "now"
    engine.login("1002", AgentProfile(skills={"gjj": 1}), 1000.0)
    engine.not_ready("1002", "training", 1001.0)
    await redis.xadd("acd:log", {"t": "x", "ev": "state", "agent": "1002", "state": "ready"})
    got = [await asyncio.wait_for(q.get(), 5) for _ in range(2)]
    stop.set()
    await asyncio.wait_for(task, 10)
    assert [(e["state"], e["reason"]) for e in got] == [("ready", None), ("not_ready", "training")]
    assert got[1]["since"] == 1001.0 and q.empty()  # the malformed entry was skipped


async def test_the_view_reads_state_reason_call_and_since(engine, redis) -> None:
    engine.login("1002", AgentProfile(skills={"gjj": 1}), 500.0)
    engine.enqueue("call-1", "gjj", 0, 510.0)
    v = await agent_view(redis, "1002")
    assert (v.state, v.call, v.since) == ("reserved", "call-1", 510.0)
    engine.accept("1002", "call-1", 512.0)
    seen = (await agent_view(redis, "1002")).public()
    assert seen == {"agent": "1002", "state": "on_call", "reason": None, "call": "call-1",
                    "since": 512.0}  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        {"t": "nan", "ev": "state", "agent": "1", "state": "ready"},
        {"t": "5", "ev": "state", "agent": "1002", "state": "dancing"},
        {"t": "5", "ev": "state", "agent": "10 02", "state": "ready"},
        {"t": "5", "ev": "state", "state": "ready"},
        {"t": "5", "ev": "x;y"},
        {"t": "5", "ev": "state", "agent": "1002", "state": "not_ready", "reason": "nap"},
    ],
)
def test_a_malformed_log_entry_is_refused(raw: dict[str, str]) -> None:
    with pytest.raises(BadEntry):
        parse_entry("1-0", raw)
