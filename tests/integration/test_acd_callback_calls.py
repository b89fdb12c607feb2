"""Real calls: callbacks instead of waiting (issue 9).  A sipp caller presses 2 (公积金) and
waits with nobody ready, is offered key 1 (``acd.callback``, threshold 0 here), confirms their
own number and hangs up keeping the place; an agent becomes ready, the router reserves the
agent first and originates the call back through the carrier trunk, where a sipp UAS (the
caller's phone, on the carrier's address) answers; the caller and the agent are bridged.

The ``callback`` stack is the ACD stack of tests/integration/test_acd_calls.py
(``running_acd``) with callbacks on.  Assertions are on AMI events, the engine's state and what
the carrier's phone received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from rules_helpers import user_events
from test_acd_calls import GENERAL, GENERAL2, GJJ, KEY_AFTER_S, Acd, running_acd
from test_call_records import record_of

from acd.policy import AgentState
from hotline.ami import AmiClient
from testphones.sipp import CallerSpec, start_phone, stop_phone

pytestmark = pytest.mark.integration

WATCHED = ("UserEvent", "DialBegin", "DialEnd", "BridgeEnter", "Hangup")


def with_callbacks(data: dict) -> None:
    data["acd"]["callback"] = {
        "enabled": True,
        "offer_after_s": 0,  # every queued caller is offered key 1
        "retries": 1,
        "retry_after_s": 5,
        "ring_s": 10,
    }


@pytest.fixture(scope="module")
def acd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acd]:
    with running_acd(tmp_path_factory, kind="callback", tweak=with_callbacks) as running:
        yield running


async def follow(acd: Acd, seen: list[dict[str, str]], stop: asyncio.Event) -> None:
    a = acd.h.config.ami
    client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
    queue = client.subscribe()
    try:
        while not stop.is_set():
            try:
                e = await asyncio.wait_for(queue.get(), 0.2)
            except TimeoutError:
                continue
            if e.get("Event") in WATCHED:
                seen.append({**e, "t": f"{time.monotonic():.3f}"})
    finally:
        client.unsubscribe(queue)
        await client.close()


async def until(check, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


CALLBACK_KEYS = [(KEY_AFTER_S, "2"), (10.0, "1"), (4.0, "1"), (4.0, "1")]
"""2 for 公积金; 1 once offered (the first announcement, 3 s into the wait), 1 to confirm the
number read back; a third 1 in case the first came before the offer."""


async def choose_callback(acd: Acd, spec: CallerSpec) -> str:
    """The caller waits, accepts the callback and is hung up; the call's id."""
    call = await acd.h.place_async(spec, 60)
    call_id = call["linkedid"]
    assert acd.engine.callback_tries(call_id) == 0, call
    assert acd.engine.call_state(call_id) == ("waiting", "")  # its place, no channel
    return call_id


def test_callback_accepted_caller_hangs_up_is_called_back_and_connected(acd: Acd) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    spec = acd.h.spec(CALLBACK_KEYS, hold_s=20)
    carrier = acd.h.config.trunks.carrier
    phone_dir = acd.h.workdir / "carrier-phone"

    async def scenario() -> tuple[list[dict[str, str]], str]:
        seen: list[dict[str, str]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(follow(acd, seen, stop))
        try:
            call_id = await choose_callback(acd, spec)
            acd.command("ready", GJJ)
            bridge = await until(lambda: bridged(seen, call_id), 30, "caller and agent bridged")
            assert acd.state(GJJ)[0] == AgentState.ON_CALL
            assert acd.engine.call_state(call_id) == ("on_call", GJJ)
            leg = next(e["Channel"] for e in bridge if e["Channel"].startswith("PJSIP/carrier-"))
            acd.h.stack.cli(f"channel request hangup {leg}")
            await until(lambda: acd.engine.call_state(call_id) is None, 15, "the call ended")
        finally:
            stop.set()
            await watcher
        return seen, call_id

    phone = start_phone("carrier", carrier.host, carrier.port, phone_dir)
    try:
        seen, call_id = asyncio.run(scenario())
    finally:
        stop_phone(phone)
    mine = [e for e in seen if e.get("Linkedid") == call_id or e.get("CallId") == call_id]
    booked = [e for e in mine if e.get("UserEvent") == "AcdCallback"]
    assert len(booked) == 1 and booked[0]["Uniqueid"] == call_id, mine
    assert spec.caller not in booked[0]["Token"]  # the number travels encrypted only
    up = [e for e in mine if e.get("UserEvent") == "AcdCallbackUp"]
    assert [e["Uniqueid"] for e in up] == [call_id]  # the callback leg carries the call's id
    # the agent was reserved before the callback was dialled: the offer precedes the INVITE
    log = [f for _, f in acd.redis.xrange("acd:log") if f.get(b"call") == call_id.encode()]
    events = [f[b"ev"].decode() for f in log]
    assert events[:2] == ["enqueue", "callback"], events
    assert "offer" in events and events.index("offer") < events.index("answer"), events
    # the carrier's phone got the callback for the caller's number, from 12345
    invites = [i for i in phone.invites() if i.uri_user == spec.caller]
    assert len(invites) == 1, phone.invites()
    assert invites[0].from_user == acd.h.config.hotline.number
    assert acd.state(GJJ)[0] in (AgentState.WRAPUP, AgentState.READY)
    assert not acd.redis.hexists("acd:cbnum", call_id)
    assert not user_events({"events": mine}, "AcdCallbackFailed")
    # the call's record names the agent who answered the callback (same call id)
    deadline = time.monotonic() + 20
    rec = record_of(acd.h, {"linkedid": call_id})
    while not rec.agents and time.monotonic() < deadline:
        time.sleep(0.5)
        rec = record_of(acd.h, {"linkedid": call_id})
    assert [(a["agent"], a["queue"]) for a in rec.agents] == [(GJJ, "acd")], rec


def bridged(seen: list[dict[str, str]], call_id: str) -> list[dict[str, str]] | None:
    """The two BridgeEnter events of one bridge joining the called-back caller's channel
    (the call's id) and agent 1002's channel."""
    by_bridge: dict[str, list[dict[str, str]]] = {}
    for e in seen:
        if e.get("Event") == "BridgeEnter" and e.get("Linkedid") == call_id:
            by_bridge.setdefault(e.get("BridgeUniqueid", ""), []).append(e)
    for entries in by_bridge.values():
        chans = {e["Channel"].rpartition("-")[0]: e for e in entries}
        caller = chans.get("PJSIP/carrier", {})
        if caller.get("Uniqueid") == call_id and f"PJSIP/agent{GJJ}" in chans:
            return entries
    return None


def test_callback_nobody_answers_is_retried_then_becomes_a_ticket(acd: Acd) -> None:
    """No phone at the carrier's address: both tries fail (the ``failed`` extension), the
    agent is free in between, and the call becomes a ticket with the caller's number."""
    from tickets.sqlite import SqliteTicketStore

    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    spec = acd.h.spec(CALLBACK_KEYS, hold_s=20)

    async def scenario() -> tuple[list[dict[str, str]], str, list]:
        seen: list[dict[str, str]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(follow(acd, seen, stop))
        store = SqliteTicketStore.from_config(acd.h.config)
        try:
            call_id = await choose_callback(acd, spec)
            acd.command("ready", GJJ)
            await until(lambda: acd.engine.call_state(call_id) is None, 45, "the callback given up")
            tickets: list = []
            deadline = time.monotonic() + 10
            while not tickets and time.monotonic() < deadline:
                tickets = await store.open_demands(spec.caller)
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await watcher
            await store.close()
        return seen, call_id, tickets

    seen, call_id, tickets = asyncio.run(scenario())
    failed = [e for e in seen if e.get("UserEvent") == "AcdCallbackFailed"]
    assert [e["CallId"] for e in failed] == [call_id, call_id], seen
    log = [f for _, f in acd.redis.xrange("acd:log") if f.get(b"call") == call_id.encode()]
    events = [f[b"ev"].decode() for f in log]
    assert events.count("offer") == 2 and "callback_retry" in events, events
    assert events[-1] == "callback_gave_up", events
    assert [t.call_id for t in tickets] == [call_id]
    assert tickets[0].seat == "gjj"
    assert acd.state(GJJ)[0] == AgentState.READY  # free again after each failed try
    assert not acd.redis.hexists("acd:cbnum", call_id)


def test_callback_booked_before_a_router_restart_is_still_called_back(acd: Acd) -> None:
    """Everything a callback needs is in Redis: the router stops after the caller hung up,
    a new one starts, and the agent's ready still calls the caller back."""
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    spec = acd.h.spec(CALLBACK_KEYS, hold_s=20)
    carrier = acd.h.config.trunks.carrier
    stack = acd.h.stack

    async def scenario() -> str:
        call_id = await choose_callback(acd, spec)
        await asyncio.to_thread(stack.stop_acd)
        await asyncio.to_thread(stack.start_acd)
        assert await asyncio.to_thread(stack.wait_acd)
        acd.command("ready", GJJ)
        await until(lambda: acd.engine.call_state(call_id) == ("on_call", GJJ), 30, "called back")
        stack.cli("channel request hangup all")
        await until(lambda: acd.engine.call_state(call_id) is None, 15, "the call ended")
        return call_id

    phone = start_phone("carrier", carrier.host, carrier.port, acd.h.workdir / "carrier-restart")
    try:
        asyncio.run(scenario())
    finally:
        stop_phone(phone)
    # (INVITEs of the previous test's unanswered tries may still be retransmitted to the port)
    assert [i.uri_user for i in phone.invites() if i.uri_user == spec.caller] == [spec.caller]
