"""Real calls through the ACD router (issue 9): sipp callers press 2 (公积金), sipp agents
answer as PJSIP endpoints, ``python -m acd serve`` decides in Redis and redirects the call.

The ``acd`` stack is hotline.yaml with ``acd.mode: router`` and short timings read from its
config (公积金 overflows to the 综合席 after ``OVERFLOW_S``, ring time-out, wrap-up,
heartbeat staleness).  Agents 1002 (公积金, level 1), 1008 and 1009 (综合席; 1009 holds 公积金
at level 2, below the specialist step) log in and change state through the agents' command
stream (``acd.commands``), as the console and phones do.  Assertions are on AMI events, the
engine's state and its counters, never on sleeps.  The main menu skips the greeting so that a
caller presses the key within seconds (the file's calls stay short).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from instances import stack_instance
from redis import Redis
from rules_helpers import place_watching, run_all, user_events
from test_call_records import record_of

from acd.commands import STREAM, AgentCommand
from acd.engine import RedisEngine
from acd.policy import AgentState, Reason
from hotline import safe_yaml
from hotline.config import load_config
from testphones.sipp import offset_config, start_phone, start_phones, stop_phone

pytestmark = pytest.mark.integration

_, OFFSET = stack_instance("acd")
GJJ, GENERAL, GENERAL2 = "1002", "1008", "1009"
OVERFLOW_S = 3
KEY_AFTER_S = 2.0
"""The caller presses the menu key this long after the answer (into the menu prompt)."""
ANNOUNCE_S = 3
"""A waiting caller hears place and estimated wait this often (acd.announce_s)."""
STREAM_FILE = re.compile(r'STREAM FILE "?hotline/([a-z0-9-]+)"? "?([0-9*#]*)"?')
"""An announcement prompt and its escape keys in Asterisk's AGI debug log."""


def acd_config_data(tmp: Path, offset: int = OFFSET) -> dict:
    """hotline.yaml for an ACD stack at ``offset``: router mode, short timings."""
    from conftest import REPO

    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), offset, tmp)
    data["menus"]["main"]["timeout_s"] = 3
    data["menus"]["main"]["prompts"] = ["main-menu"]  # no greeting: keys from KEY_AFTER_S
    data["menus"]["main"]["retries"] = 2
    data.setdefault("speech", {})["mode"] = "off"
    data["throttle"] = {**data.get("throttle", {}), "enabled": False}
    for agent in data["agents"]:
        if agent["id"] == GENERAL2:
            agent["levels"] = {"gjj": 2, "renshe": 2}
    data["acd"] = {
        **data.get("acd", {}),
        "mode": "router",
        "login_at_start": False,  # each scenario signs in the agents it needs
        "specialist_steps": [
            {"level": 1, "after_s": 0},
            {"level": "general", "after_s": OVERFLOW_S},
        ],
        "ring_timeout_s": 4,
        "wrapup_s": 2,
        "heartbeat_s": 1,
        "stale_s": 3,
        "ack_s": 3,
        "announce_s": ANNOUNCE_S,
    }
    return data


class Acd:
    """The running stack plus the engine's view of it."""

    def __init__(self, hotline, redis: Redis) -> None:  # type: ignore[no-untyped-def]
        self.h = hotline
        self.redis = redis
        self.engine = RedisEngine(redis, hotline.config.acd_settings())

    def command(self, op: str, agent: str, reason: Reason | None = None) -> None:
        cmd = AgentCommand(op=op, agent_id=agent, reason=reason, by="itest")  # type: ignore[arg-type]
        self.redis.xadd(STREAM, cmd.fields())

    def state(self, agent: str) -> tuple[str, str]:
        try:
            st, reason, _ = self.engine.agent_state(agent)
        except Exception:  # never logged in
            return AgentState.LOGGED_OUT, ""
        return st, reason

    def wait_state(self, agent: str, state: str, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.state(agent)[0] == state:
                return
            time.sleep(0.05)
        raise AssertionError(f"agent {agent} is {self.state(agent)}, not {state}")

    def set_agents(self, ready: tuple[str, ...] = (), not_ready: tuple[str, ...] = ()) -> None:
        """Bring the agents to these states, in the order given (the first ready agent is
        the longest idle)."""
        for agent in (*ready, *not_ready):
            st = self.state(agent)[0]
            if st in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAPUP):
                self.wait_state(agent, AgentState.READY)
                st = AgentState.READY
            if st == AgentState.LOGGED_OUT:
                self.command("login", agent)
                self.wait_state(agent, AgentState.READY)
            if agent in ready:
                if self.state(agent)[0] != AgentState.READY:
                    self.command("ready", agent)
                    self.wait_state(agent, AgentState.READY)
                time.sleep(0.05)  # distinct idle-since times
            else:
                self.command("not_ready", agent, Reason.BREAK)
                self.wait_state(agent, AgentState.NOT_READY)

    def counter(self, kind: str, name: str, field: str) -> int:
        return int(self.redis.hget(f"acd:n:{kind}:{name}", field) or 0)

    def place(self, digits: str = "2", hold_s: float = 6.0) -> dict:
        spec = self.h.spec(digits, hold_s=hold_s, key_after_s=KEY_AFTER_S)
        (call,) = run_all(place_watching(self.h, spec))
        return call


def dials(call: dict) -> list[tuple[float, str]]:
    """(t, agent endpoint) of every DialBegin towards an agent."""
    return [
        (e["t"], e["DestChannel"].rpartition("-")[0].removeprefix("PJSIP/"))
        for e in call["events"]
        if e.get("Event") == "DialBegin" and e.get("DestChannel", "").startswith("PJSIP/agent")
    ]


@contextlib.contextmanager
def running_acd(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str = "acd",
    tweak: Callable[[dict], None] | None = None,
) -> Iterator[Acd]:
    """An ACD stack (``acd_config_data`` changed by ``tweak``) on the ``kind`` slot of
    instances.py, its router ready and the agents' phones registered; down afterwards."""
    from conftest import Hotline, _why_not_runnable

    from runtime.procs import StackError
    from runtime.stack import Stack

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    instance, offset = stack_instance(kind)
    tmp = tmp_path_factory.mktemp(f"hotline-{kind}")
    data = acd_config_data(tmp, offset)
    if tweak is not None:
        tweak(data)
    config_path = tmp / f"{instance}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    config = load_config(config_path)
    stack = Stack(config_path, instance=instance, run_dir=tmp / "run")
    phones = None
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the {kind} stack did not come up: {exc}", pytrace=False)
        assert stack.timings.get("acd_ready"), stack.status()["acd"]
        log_start = stack.asterisk_log.stat().st_size
        stack.cli("agi set debug on")  # the announcements' STREAM FILEs, per channel
        phones = start_phones(config, tmp / "phones")
        redis = Redis(**config.redis.client_kwargs())  # type: ignore[arg-type]
        deadline = time.monotonic() + 15
        while not redis.exists("acd:router:router-1") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(config.acd.heartbeat_s * 1.5)  # the beat reached Asterisk's global too
        yield Acd(Hotline(config, config_path, stack, phones, tmp, log_start), redis)
    finally:
        if phones is not None:
            phones.stop()
        stack.down()


@pytest.fixture(scope="module")
def acd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acd]:
    with running_acd(tmp_path_factory) as running:
        yield running


def test_gongjijin_call_reaches_idle_gongjijin_agent_not_longer_idle_zonghe_agent(
    acd: Acd,
) -> None:
    acd.set_agents(ready=(GENERAL, GENERAL2, GJJ))  # the 综合席 agents are idle longer
    answered = acd.counter("agent", GJJ, "answered")
    call = acd.place("2")
    assert user_events(call, "AcdWait"), call["events"]
    assert [agent for _, agent in dials(call)] == [f"agent{GJJ}"]
    assert acd.counter("agent", GJJ, "answered") == answered + 1
    assert acd.state(GENERAL)[0] == AgentState.READY
    # the call record names the agent (the Dial context's DialEnd, no app_queue), and the
    # conversation was recorded like a queued one (Dial's U() gosub; issue 11)
    rec = record_of(acd.h, call)
    assert [(a["agent"], a["queue"]) for a in rec.agents] == [(GJJ, "acd")], rec.agents
    deadline = time.monotonic() + 20
    while not rec.recordings and time.monotonic() < deadline:
        time.sleep(0.5)
        rec = record_of(acd.h, call)
    assert rec.recordings, "the routed call was not recorded"
    # the caller hung up after the conversation: the agent wraps up, then is ready again
    acd.wait_state(GJJ, AgentState.READY, timeout_s=10)


def test_waiting_caller_hears_place_and_wait_then_the_agent_who_becomes_ready_answers(
    acd: Acd,
) -> None:
    import asyncio

    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    spec = acd.h.spec("2", hold_s=24, key_after_s=KEY_AFTER_S)

    async def scenario() -> tuple[dict, list[str]]:
        task = asyncio.create_task(place_watching(acd.h, spec))
        deadline = time.monotonic() + 30
        heard: list[str] = []
        while time.monotonic() < deadline and not task.done():
            waiting = acd.redis.zrange("acd:q:gjj:0", 0, 0)
            channel = acd.redis.hget("acd:chan", waiting[0]) if waiting else None
            heard = acd.h.agi_commands(channel.decode()) if channel else []
            if any("hotline/acd-minutes" in c or "hotline/acd-patience" in c for c in heard):
                break
            await asyncio.sleep(0.2)
        acd.command("ready", GJJ)  # only now may anyone answer
        return await task, heard

    call, heard = asyncio.run(scenario())
    streams = [m.groups() for c in heard if (m := STREAM_FILE.match(c))]  # IVR prompts first
    names = [prompt for prompt, _ in streams]
    assert "acd-next" in names, (heard, call["events"])  # alone in the queue: 您是下一位
    announced = streams[names.index("acd-next") :]
    said = [prompt for prompt, _ in announced]
    assert said[1] in ("acd-wait-about", "acd-patience"), said  # then the wait (or patience)
    assert said[-1] in ("acd-minutes", "acd-wait-long", "acd-patience"), said
    assert {keys for _, keys in announced} == {"9"}  # the emergency key interrupts each prompt
    (wait,) = user_events(call, "AcdWait")
    assert [agent for _, agent in dials(call)] == [f"agent{GJJ}"], call["events"]
    assert dials(call)[0][0] - wait["t"] >= ANNOUNCE_S, call["events"]
    ends = [e["DialStatus"] for e in call["events"] if e.get("Event") == "DialEnd"]
    assert ends == ["ANSWER"], call["events"]
    commands = acd.h.agi_commands(call["channel"])
    assert any(m and m.group(1) == "acd-next" for m in map(STREAM_FILE.match, commands))


def test_no_gongjijin_agent_free_overflows_to_zonghe_after_the_overflow_time(acd: Acd) -> None:
    acd.set_agents(ready=(GENERAL,), not_ready=(GJJ, GENERAL2))
    call = acd.place("2", hold_s=OVERFLOW_S + 6)
    (wait,) = user_events(call, "AcdWait")
    assert [agent for _, agent in dials(call)] == [f"agent{GENERAL}"]
    assert dials(call)[0][0] - wait["t"] >= OVERFLOW_S - 0.3, call["events"]


def test_ring_no_answer_sets_agent_not_ready_and_reoffers_the_call(acd: Acd) -> None:
    h = acd.h
    agent = next(a for a in h.config.agents if a.id == GJJ)
    stop_phone(h.phones.phones[agent.endpoint])
    h.phones.phones[agent.endpoint] = start_phone(
        agent.endpoint, agent.host, agent.port, h.workdir / "phones-silent", ring_s=60
    )
    try:
        acd.set_agents(ready=(GENERAL, GJJ), not_ready=(GENERAL2,))
        call = acd.place("2", hold_s=h.config.acd.ring_timeout_s + 8)
    finally:
        stop_phone(h.phones.phones[agent.endpoint])
        h.phones.phones[agent.endpoint] = start_phone(
            agent.endpoint, agent.host, agent.port, h.workdir / "phones"
        )
    assert [a for _, a in dials(call)] == [f"agent{GJJ}", f"agent{GENERAL}"], call["events"]
    ends = [e for e in call["events"] if e.get("Event") == "DialEnd"]
    assert ends[0]["DialStatus"] == "NOANSWER" and ends[-1]["DialStatus"] == "ANSWER"
    assert acd.state(GJJ) == (AgentState.NOT_READY, Reason.NO_ANSWER)


def test_caller_hanging_up_while_waiting_is_counted_abandoned_with_the_wait(acd: Acd) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    abandoned = acd.counter("skill", "gjj", "abandoned")
    last = acd.redis.xrevrange("acd:log", count=1)
    since = last[0][0] if last else b"0"
    call = acd.place("2", hold_s=7)
    (wait,) = user_events(call, "AcdWait")
    assert not dials(call)
    assert acd.counter("skill", "gjj", "abandoned") == abandoned + 1
    entries = [f for _, f in acd.redis.xrange("acd:log", min=since) if f[b"ev"] == b"abandon"]
    (entry,) = [f for f in entries if f[b"call"].decode() == call["linkedid"]]
    hangup = next(
        e["t"] for e in call["events"]
        if e.get("Event") == "Hangup" and e.get("Uniqueid") == call["linkedid"]
    )  # fmt: skip
    assert float(entry[b"wait"]) == pytest.approx(hangup - wait["t"], abs=0.5)
    assert float(entry[b"wait"]) > 1.0
    assert acd.engine.call_state(call["linkedid"]) is None


def test_waiting_caller_presses_9_then_2_and_reaches_119(acd: Acd) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    # 2 at once, 9 once the transfer prompt is over and the caller waits, then 2 for 119
    spec = acd.h.spec([(KEY_AFTER_S, "2"), (6.0, "9"), (3.0, "2")], hold_s=8)
    (call,) = run_all(place_watching(acd.h, spec))
    seen = [(e["t"], e.get("UserEvent") or e["Event"], e.get("Reason", "")) for e in call["events"]]
    assert [e["Reason"] for e in user_events(call, "AcdLeave")] == ["emergency-key"], seen
    assert [e["Key"] for e in user_events(call, "HotlineQueueExit")] == ["9"]
    (emergency,) = user_events(call, "HotlineEmergency")
    assert (emergency["Line"], emergency["Reason"]) == ("119", "queue-key:9-2")
    assert not dials(call)
    assert acd.engine.call_state(call["linkedid"]) is None


def test_router_stopped_while_caller_waits_fails_open_and_its_restart_reconciles(acd: Acd) -> None:
    import asyncio

    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    stack = acd.h.stack
    spec = acd.h.spec("2", hold_s=acd.h.config.acd.stale_s + 10, key_after_s=KEY_AFTER_S)

    async def scenario() -> dict:
        task = asyncio.create_task(place_watching(acd.h, spec))
        deadline = time.monotonic() + 30
        while acd.engine.waiting("gjj") < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(stack.stop_acd)
        return await task

    try:
        call = asyncio.run(scenario())
    finally:
        stack.start_acd()
        assert stack.wait_acd()
    assert [e["Reason"] for e in user_events(call, "AcdFallback")] == ["router-lost"]
    seat_agents = {a.endpoint for a in acd.h.config.agents if "gjj" in a.seats}
    assert [agent for _, agent in dials(call)][-1] in seat_agents, call["events"]
    # the restarted router finds the call gone from its waiting room and releases it
    deadline = time.monotonic() + 15
    while acd.engine.call_state(call["linkedid"]) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert acd.engine.call_state(call["linkedid"]) is None


def test_redis_stopped_the_call_reaches_the_fallback_queue_agent(acd: Acd) -> None:
    acd.set_agents(not_ready=(GENERAL2,), ready=(GJJ, GENERAL))
    acd.h.stack.stop_redis()
    try:
        call = acd.place("2")
    finally:
        acd.h.stack.start_redis()
    assert user_events(call, "AcdFallback"), call["events"]
    seat_agents = {a.endpoint for a in acd.h.config.agents if "gjj" in a.seats}
    reached = [agent for _, agent in dials(call)]
    assert reached and reached[-1] in seat_agents, call["events"]
    assert any(e.get("Event") == "AgentConnect" for e in call["events"]), call["events"]
