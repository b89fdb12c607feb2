"""The ACD router's handlers against a recording AMI and the in-memory policy (the same
decisions as the Redis engine, tests/integration/test_acd_redis.py); real calls are in
tests/integration/test_acd_calls.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from acd.commands import STREAM, AgentCommand
from acd.policy import AgentState, Policy, Reason
from acd.router import DIAL_CONTEXT, WAIT_CONTEXT, AcdRouter
from hotline import dialplan_vars as V
from hotline.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
CONFIG = load_config(EXAMPLE)


class PolicyEngine(Policy):
    """The pure policy with the two members of RedisEngine the router also uses."""

    prefix = "acd:"

    def install(self) -> None:
        pass


class FakeRedis:
    """The few hash/key calls the router makes; ``down`` makes every call fail."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.keys: dict[str, str] = {}
        self.streams: dict[str, list[dict[str, str]]] = {}
        self.groups: dict[str, dict[str, int]] = {}
        """stream → group → the entries before it was made ("$": it never reads them)."""
        self.engine = engine
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("connection refused")

    def hset(self, key: str, field: str, value: str) -> None:
        self._check()
        self.hashes.setdefault(key, {})[field] = value

    def hget(self, key: str, field: str) -> str | None:
        self._check()
        return self.hashes.get(key, {}).get(field)

    def hexists(self, key: str, field: str) -> bool:
        self._check()
        return field in self.hashes.get(key, {})

    def hdel(self, key: str, field: str) -> None:
        self._check()
        self.hashes.get(key, {}).pop(field, None)

    def exists(self, key: str) -> bool:
        self._check()
        return key in self.keys

    def set(self, key: str, value: str, ex: int) -> None:
        self._check()
        self.keys[key] = value

    def xadd(self, stream: str, fields: dict[str, str], **_: object) -> str:
        self._check()
        self.streams.setdefault(stream, []).append(fields)
        return f"{len(self.streams[stream])}-0"

    def xgroup_create(self, stream: str, group: str, id: str, mkstream: bool) -> None:
        self._check()
        self.groups.setdefault(stream, {group: len(self.streams.get(stream, []))})

    def scan_iter(self, match: str, count: int) -> list[str]:
        return [f"acd:c:{call}" for call in self.engine._calls]


class FakeAmi:
    """Records actions; channels in ``gone`` refuse them; ``vars`` answers Getvar."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, object]]] = []
        self.gone: set[str] = set()
        self.channels: list[dict[str, str]] = []
        self.vars: dict[tuple[str, str], str] = {}

    async def action(self, name: str, timeout: float = 10.0, **fields: object) -> dict[str, str]:
        self.actions.append((name, fields))
        if name == "Getvar":
            return {
                "Response": "Success",
                "Value": self.vars.get((fields["Channel"], fields["Variable"]), ""),
            }  # type: ignore[index]
        if fields.get("Channel") in self.gone:
            return {"Response": "Error", "Message": "No such channel"}
        return {"Response": "Success"}

    async def action_list(self, name: str, timeout: float = 10.0) -> list[dict[str, str]]:
        return list(self.channels)

    def redirects(self) -> list[tuple[object, object]]:
        return [(f["Channel"], f["Context"]) for n, f in self.actions if n == "Redirect"]

    def agents_rung(self) -> list[object]:
        return [f["Value"] for n, f in self.actions if f.get("Variable") == V.ACD_AGENT]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> tuple[AcdRouter, PolicyEngine, FakeRedis, FakeAmi, Clock]:
    settings = CONFIG.acd_settings()
    engine = PolicyEngine(settings)
    redis = FakeRedis(engine)
    clock = Clock()
    router = AcdRouter(CONFIG, redis, engine, clock=clock)  # type: ignore[arg-type]
    ami = FakeAmi()
    router.ami = ami  # type: ignore[assignment]
    return router, engine, redis, ami, clock


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def login(router: AcdRouter, *agents: str) -> None:
    for agent in agents:
        cmd = AgentCommand(op="login", agent_id=agent)  # type: ignore[arg-type]
        run(router.apply(cmd.fields()))
        router.clock.now += 1  # type: ignore[attr-defined]


def wait_event(uid: str, skill: str = "gjj", channel: str = "") -> dict[str, str]:
    channel = channel or f"PJSIP/carrier-{uid}"
    return {"Event": "UserEvent", "UserEvent": "AcdWait", "Uniqueid": uid,
            "Channel": channel, "Skill": skill, "QueuePriority": "0"}  # fmt: skip


def test_gongjijin_caller_is_redirected_to_the_gongjijin_agent_not_the_longer_idle_zonghe(
    setup: tuple,
) -> None:
    router, engine, _redis, ami, _clock = setup
    login(router, "1008", "1002")  # the 综合席 agent is idle longer
    run(router.handle(wait_event("1700.1"), ami))
    assert (V.ACD_QUEUED, "1") in [(f.get("Variable"), f.get("Value")) for _, f in ami.actions]
    assert ami.agents_rung() == ["1002"]
    assert ami.redirects() == [("PJSIP/carrier-1700.1", DIAL_CONTEXT)]
    assert engine.agent_state("1002")[0] == AgentState.RESERVED


def test_answer_then_hangup_puts_the_agent_in_wrapup(setup: tuple) -> None:
    router, engine, _redis, ami, _clock = setup
    login(router, "1002")
    run(router.handle(wait_event("1700.2"), ami))
    dial_end = {"Event": "DialEnd", "Uniqueid": "1700.2", "DialStatus": "ANSWER",
                "DestChannel": "PJSIP/agent1002-00000004"}  # fmt: skip
    run(router.handle(dial_end, ami))
    assert engine.agent_state("1002")[0] == AgentState.ON_CALL
    run(router.handle({"Event": "Hangup", "Uniqueid": "1700.2"}, ami))
    assert engine.agent_state("1002")[0] == AgentState.WRAPUP


def test_ring_no_answer_makes_agent_not_ready_and_reoffers_to_the_next(setup: tuple) -> None:
    router, engine, _redis, ami, clock = setup
    login(router, "1002", "1008")
    run(router.handle(wait_event("1700.3"), ami))
    clock.now += 50  # past the overflow to the 综合席
    dial_end = {"Event": "DialEnd", "Uniqueid": "1700.3", "DialStatus": "NOANSWER",
                "DestChannel": "PJSIP/agent1002-00000007"}  # fmt: skip
    run(router.handle(dial_end, ami))
    assert engine.agent_state("1002")[:2] == (AgentState.NOT_READY, Reason.NO_ANSWER)
    assert ami.agents_rung() == ["1002", "1008"]


def test_dial_end_of_another_agent_or_a_cancel_changes_nothing(setup: tuple) -> None:
    router, engine, _redis, ami, _clock = setup
    login(router, "1002")
    run(router.handle(wait_event("1700.4"), ami))
    for dest, status in (("PJSIP/agent1003-01", "NOANSWER"), ("PJSIP/agent1002-01", "CANCEL")):
        event = {"Event": "DialEnd", "Uniqueid": "1700.4", "DialStatus": status,
                 "DestChannel": dest}  # fmt: skip
        run(router.handle(event, ami))
    assert engine.agent_state("1002")[0] == AgentState.RESERVED


def test_caller_hangs_up_while_waiting_is_abandoned_and_forgotten(setup: tuple) -> None:
    router, engine, redis, ami, _clock = setup
    run(router.handle(wait_event("1700.5"), ami))
    run(router.handle({"Event": "Hangup", "Uniqueid": "1700.5"}, ami))
    run(router.handle({"Event": "Hangup", "Uniqueid": "9999.9"}, ami))  # not ours
    assert engine.call_state("1700.5") is None
    assert [e["ev"] for e in engine.log if e.get("call") == "1700.5"] == ["enqueue", "abandon"]
    assert "1700.5" not in redis.hashes["acd:chan"]


def test_hostile_uniqueid_is_never_queued(setup: tuple) -> None:
    router, engine, _redis, ami, _clock = setup
    run(router.handle(wait_event("1700.6|x\r\nAction: Originate"), ami))
    assert not engine._calls and not ami.actions


def test_redis_down_at_enqueue_sends_the_caller_to_the_app_queue_fallback(setup: tuple) -> None:
    router, _engine, redis, ami, _clock = setup
    redis.down = True
    run(router.handle(wait_event("1700.7"), ami))
    assert ami.redirects() == [("PJSIP/carrier-1700.7", WAIT_CONTEXT)]
    assert ami.actions[-1][1]["Exten"] == "fallback"


def test_offer_to_a_gone_channel_frees_the_agent_for_the_next_call(setup: tuple) -> None:
    router, engine, _redis, ami, _clock = setup
    ami.gone.add("PJSIP/carrier-1700.8")
    run(router.handle(wait_event("1700.8"), ami))
    login(router, "1002")
    assert engine.call_state("1700.8") is None
    assert engine.agent_state("1002")[0] == AgentState.READY


def test_reconcile_releases_dead_calls_and_requeues_live_waiting_channels(setup: tuple) -> None:
    router, engine, _redis, ami, _clock = setup
    login(router, "1002")
    run(router.handle(wait_event("1700.9"), ami))  # reserved 1002, then the channel died
    ami.channels = [{"Uniqueid": "1701.1", "Channel": "PJSIP/carrier-b", "Context": WAIT_CONTEXT}]
    ami.vars[("PJSIP/carrier-b", V.SEAT)] = "gjj"
    ami.actions.clear()
    run(router.reconcile())
    assert engine.call_state("1700.9") is None
    assert engine.call_state("1701.1") == ("reserved", "1002")
    assert ami.redirects() == [("PJSIP/carrier-b", DIAL_CONTEXT)]


def test_reconcile_keeps_an_offer_whose_caller_is_in_the_pre_dial_subroutine(
    setup: tuple,
) -> None:
    """A takeover lists the channels while the offered caller runs hotline-queue-prep on his
    way to Dial: the agent stays reserved, and the next caller is not rung on his phone."""
    router, engine, _redis, ami, _clock = setup
    login(router, "1002")
    run(router.handle(wait_event("1700.9"), ami))
    ami.channels = [
        {"Uniqueid": "1700.9", "Channel": "PJSIP/carrier-1700.9",
         "Context": V.QUEUE_PREP_CONTEXT},
        {"Uniqueid": "1701.1", "Channel": "PJSIP/carrier-b", "Context": WAIT_CONTEXT},
    ]  # fmt: skip
    ami.vars[("PJSIP/carrier-b", V.SEAT)] = "gjj"
    ami.actions.clear()
    run(router.reconcile())
    assert engine.call_state("1700.9") == ("reserved", "1002")
    assert engine.call_state("1701.1") == ("waiting", "")
    assert ami.agents_rung() == []


def test_commands_change_agent_state_and_malformed_ones_are_refused(setup: tuple) -> None:
    router, engine, _redis, _ami, _clock = setup
    login(router, "1002")
    cmd = AgentCommand(op="not_ready", agent_id="1002", reason=Reason.MEETING)  # type: ignore[arg-type]
    run(router.apply(cmd.fields()))
    assert engine.agent_state("1002")[:2] == (AgentState.NOT_READY, Reason.MEETING)
    run(router.apply({"op": "ready", "agent": "1002;DROP", "at": "1"}))
    run(router.apply({"op": "login", "agent": "4242", "at": "1"}))  # not in the config
    assert engine.agent_state("1002")[0] == AgentState.NOT_READY


def test_agents_never_seen_are_signed_in_at_start_and_one_who_signed_out_stays_out(
    setup: tuple,
) -> None:
    router, engine, redis, _ami, _clock = setup
    assert router.config.acd.login_at_start  # hotline.yaml: a demo centre
    login(router, "1002")
    run(router.apply(AgentCommand(op="logout", agent_id="1002").fields()))  # type: ignore[arg-type]
    asked = router.sign_in_configured()
    assert "1002" not in asked and set(asked) == set(CONFIG.acd_profiles()) - {"1002"}
    assert redis.groups[STREAM]["acd-router"] == 0  # made first: the router reads them all
    for fields in redis.streams[STREAM]:
        assert AgentCommand.parse(fields).source == "system"
        run(router.apply(fields))  # the leader's command loop
    assert engine.agent_state("1001")[0] == AgentState.READY
    assert engine.agent_state("1002")[0] == AgentState.LOGGED_OUT
    assert router.sign_in_configured() == []  # a restart: everybody is known now
    redis.down = True
    assert router.sign_in_configured() == []  # logged; calls fail open meanwhile
    off = CONFIG.model_copy(update={"acd": CONFIG.acd.model_copy(update={"login_at_start": False})})
    assert AcdRouter(off, redis, engine).sign_in_configured() == []  # type: ignore[arg-type]


def test_heartbeat_reaches_asterisk_only_while_redis_answers(setup: tuple) -> None:
    router, _engine, redis, ami, clock = setup
    assert asyncio.run(router.beat())
    assert ami.actions[-1] == ("Setvar", {"Variable": V.ACD_BEAT, "Value": str(int(clock.now))})
    assert "acd:router:router-1" in redis.keys
    ami.actions.clear()
    redis.down = True
    assert not asyncio.run(router.beat())
    assert ami.actions == []  # the beat in Asterisk ages: the dialplan fails open to app_queue
