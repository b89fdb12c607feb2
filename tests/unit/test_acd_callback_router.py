"""The router's callback handlers (acd/callback_router.py) with the real Redis engine on a
real redis-server and a recording AMI: a waiting caller keeps the place without the channel,
the reserved agent's offer originates the call back, failures retry then make a ticket, and a
restarted router carries a pending callback on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from test_acd_router import FakeAmi

from acd.commands import AgentCommand
from acd.policy import AgentState, Reason
from acd.router import AcdRouter, engine_for
from hotline import dialplan_vars as V
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from hotline.privacy import CallerKey

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
NUMBER = "13800005678"
CALL, CHANNEL = "1700000000.42", "PJSIP/carrier-0000002a"


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    data = safe_yaml.load_file(EXAMPLE)
    data["acd"]["mode"] = "router"
    data["acd"]["callback"] = {"enabled": True, "retries": 1, "retry_after_s": 30, "ring_s": 20}
    data["tickets"]["key_file"] = str(tmp_path / "pii.key")
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_config(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tickets:
    def __init__(self) -> None:
        self.drafts: list[dict[str, Any]] = []

    async def __call__(self, draft: dict[str, Any]) -> object:
        self.drafts.append(draft)
        return type("Ticket", (), {"id": f"T{len(self.drafts)}"})()


class Hotline:
    """A router on the test Redis, its AMI recording, and the phones' events."""

    def __init__(self, config: HotlineConfig, port: int) -> None:
        self.config = config
        self.redis = Redis(port=port)
        self.clock = Clock()
        self.tickets = Tickets()
        self.router = self.restart()

    def restart(self) -> AcdRouter:
        """A new router process on the same Redis (the old one's memory is lost)."""
        engine = engine_for(self.config, self.redis)
        engine.install()
        router = AcdRouter(self.config, self.redis, engine, clock=self.clock, tickets=self.tickets)
        router.ami = FakeAmi()  # type: ignore[assignment]
        self.router = router
        return router

    @property
    def ami(self) -> FakeAmi:
        return self.router.ami  # type: ignore[return-value]

    def event(self, **fields: str) -> None:
        asyncio.run(self.router.handle(fields, self.router.ami))  # type: ignore[arg-type]

    def user_event(self, kind: str, **fields: str) -> None:
        self.event(Event="UserEvent", UserEvent=kind, **fields)

    def command(self, op: str, agent: str) -> None:
        asyncio.run(self.router.apply(AgentCommand(op=op, agent_id=agent, by="t").fields()))  # type: ignore[arg-type]

    def token(self, number: str = NUMBER) -> str:
        return CallerKey.from_file(self.config.tickets.key_file).encrypt(number)

    def originates(self) -> list[dict[str, object]]:
        return [f for n, f in self.ami.actions if n == "Originate"]


@pytest.fixture
def h(config: HotlineConfig, acd_redis_port: int) -> Iterator[Hotline]:
    Redis(port=acd_redis_port).flushdb()
    hotline = Hotline(config, acd_redis_port)
    yield hotline
    hotline.redis.close()


def wait_then_choose_callback(h: Hotline) -> None:
    h.command("login", "1002")
    h.router.engine.not_ready("1002", Reason.BREAK, h.clock())  # nobody free: the caller waits
    h.user_event("AcdWait", Uniqueid=CALL, Channel=CHANNEL, Skill="gjj", Priority="0")
    h.clock.now += 30
    h.user_event("AcdCallback", Uniqueid=CALL, Channel=CHANNEL, Token=h.token())


def test_caller_choosing_a_callback_keeps_the_place_and_may_hang_up(h: Hotline) -> None:
    wait_then_choose_callback(h)
    engine = h.router.engine
    assert engine.callback_tries(CALL) == 0 and engine.position(CALL) == 1
    assert ("Setvar", {"Channel": CHANNEL, "Variable": V.ACD_CB_OK, "Value": "1"}) in (
        h.ami.actions
    )
    h.event(Event="Hangup", Uniqueid=CALL, Channel=CHANNEL)  # the caller hangs up
    assert engine.call_state(CALL) == ("waiting", "")  # not abandoned
    assert NUMBER not in str(h.redis.hgetall("acd:cbnum"))  # kept encrypted only


def test_agent_ready_is_reserved_first_then_the_caller_is_called_back_and_connected(
    h: Hotline,
) -> None:
    wait_then_choose_callback(h)
    h.event(Event="Hangup", Uniqueid=CALL, Channel=CHANNEL)
    h.command("ready", "1002")
    assert h.router.engine.agent_state("1002") == (AgentState.RESERVED, "", CALL)
    (orig,) = h.originates()
    assert orig["Channel"] == f"PJSIP/{NUMBER}@carrier"
    assert orig["ChannelId"] == CALL and orig["Context"] == V.ACD_CALLBACK_CONTEXT
    assert f"{V.ACD_AGENT}=1002" in str(orig["Variable"])
    assert not [n for n, _ in h.ami.actions if n == "Redirect"]  # no channel to redirect
    # the caller answers; the Dial context rings the reserved agent, who answers
    h.user_event("AcdCallbackUp", Uniqueid=CALL, Channel="PJSIP/carrier-0000003b")
    h.event(Event="DialEnd", Uniqueid=CALL, DestChannel="PJSIP/agent1002-0001", DialStatus="ANSWER")
    assert h.router.engine.agent_state("1002")[0] == AgentState.ON_CALL
    h.event(Event="Hangup", Uniqueid=CALL, Channel="PJSIP/carrier-0000003b")
    assert h.router.engine.call_state(CALL) is None
    assert h.router.engine.agent_state("1002")[0] == AgentState.WRAPUP
    assert not h.redis.hexists("acd:cbnum", CALL)


def test_unanswered_callback_frees_the_agent_retries_then_becomes_a_ticket(
    h: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wait_then_choose_callback(h)
    h.event(Event="Hangup", Uniqueid=CALL, Channel=CHANNEL)
    h.command("ready", "1002")
    h.user_event("AcdCallbackFailed", CallId=CALL, Reason="3")  # no answer
    engine = h.router.engine
    assert engine.agent_state("1002")[0] == AgentState.READY  # free meanwhile
    assert engine.call_state(CALL) == ("retry", "")
    h.clock.now += 30
    asyncio.run(h.router.execute(engine.tick(h.clock())))
    assert len(h.originates()) == 2  # the retry: the same agent is reserved again
    h.user_event("AcdCallbackFailed", CallId=CALL, Reason="5")  # busy: the last try
    assert engine.call_state(CALL) is None
    (draft,) = h.tickets.drafts
    assert (draft["caller"], draft["call_id"], draft["seat"]) == (NUMBER, CALL, "gjj")
    assert not h.redis.hexists("acd:cbnum", CALL)
    assert engine.agent_state("1002")[0] == AgentState.READY
    assert NUMBER not in caplog.text and NUMBER[-4:] not in caplog.text


def test_restarted_router_calls_back_a_pending_callback(h: Hotline) -> None:
    wait_then_choose_callback(h)
    h.event(Event="Hangup", Uniqueid=CALL, Channel=CHANNEL)
    router = h.restart()
    asyncio.run(router.reconcile())  # Asterisk has no channel of the call: expected
    assert router.engine.callback_tries(CALL) == 0
    h.command("ready", "1002")
    assert [o["ChannelId"] for o in h.originates()] == [CALL]


@pytest.mark.parametrize(
    "fields",
    [
        {"Uniqueid": CALL, "Channel": CHANNEL, "Token": "not a token"},
        {"Uniqueid": CALL, "Channel": CHANNEL, "Token": "A" * 120},  # not ours: not readable
        {"Uniqueid": CALL, "Channel": "PJSIP/carrier-99999999"},  # not the waiting channel
        {"Uniqueid": "p|x|0", "Channel": CHANNEL},
    ],
)
def test_forged_or_unreadable_callback_requests_change_nothing(
    h: Hotline, fields: dict[str, str]
) -> None:
    h.user_event("AcdWait", Uniqueid=CALL, Channel=CHANNEL, Skill="gjj", Priority="0")
    h.user_event("AcdCallback", **{"Token": h.token(), **fields})
    assert h.router.engine.callback_tries(CALL) is None
    assert h.redis.hget("acd:chan", CALL) == CHANNEL.encode()
    assert not [f for n, f in h.ami.actions if f.get("Variable") == V.ACD_CB_OK]


def test_callback_failure_event_for_a_live_or_unknown_call_is_ignored(h: Hotline) -> None:
    h.command("login", "1002")
    h.user_event("AcdWait", Uniqueid=CALL, Channel=CHANNEL, Skill="gjj", Priority="0")
    assert h.router.engine.agent_state("1002") == (AgentState.RESERVED, "", CALL)
    h.user_event("AcdCallbackFailed", CallId=CALL, Reason="3")  # not a callback
    h.user_event("AcdCallbackFailed", CallId="nobody", Reason="3")
    assert h.router.engine.agent_state("1002") == (AgentState.RESERVED, "", CALL)
