"""The call's facts (hotline.call), the AMI bridge, the record store and ``hotline calls``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from stream_fakes import StreamRedis, draft_event

from calls.bridge import AmiBridge
from calls.store import SqliteCallStore
from calls.stream import CallStream
from cli.main import main as hotline
from hotline import dialplan_vars as V
from hotline.call import (
    CallerId,
    CallEvent,
    CallRecord,
    IvrOutcome,
    MalformedEvent,
    TicketDraft,
    caller_number,
    decode_message,
)
from hotline.privacy import CallerKey

KEY = CallerKey(b"k" * 32)


def event(kind: str, call_id: str = "1700000000.1", at: float = 1.0, **data: object) -> CallEvent:
    return CallEvent(kind, call_id, at, "test", data=dict(data))


# ---- the caller ------------------------------------------------------------------------------
def test_withheld_numbers_are_one_check_and_never_a_caller() -> None:
    for raw in ("anonymous", "Unknown", "Restricted", "", None, "<unknown>", "12"):
        assert caller_number(raw) == ""
        assert CallerId.of(raw, KEY) == CallerId(masked="withheld", hash="", withheld=True)
    assert caller_number(" 13800001111\x00 ") == "13800001111"


def test_a_callers_number_is_kept_only_masked_and_hashed() -> None:
    one = CallerId.of("+86 138-0000-1111", KEY)
    assert one.masked == "138****1111" and not one.withheld
    assert one.hash == CallerId.of("13800001111", KEY).hash == KEY.hash("13800001111")
    assert "13800001111" not in json.dumps(CallRecord("c", caller=one).to_json())


# ---- the IVR outcome -------------------------------------------------------------------------
def test_a_seat_outcome_gives_the_dialplan_its_variables_with_route_last() -> None:
    out = IvrOutcome("queue", "main>5>0", seat="zonghe", queue="seat_zonghe", notice="privacy")
    assert out.channel_variables() == [
        (V.NOTICE, "privacy"),
        (V.QUEUE, "seat_zonghe"),
        (V.SEAT, "zonghe"),
        (V.PRIORITY, "0"),
        (V.IVR_PATH, "main>5>0"),
        (V.ROUTE, "queue"),
    ]
    emergency = IvrOutcome(
        "emergency",
        "main>9>emergency>2",
        emergency_line="119",
        emergency_reason="key:main>9>emergency>2",
    )
    assert emergency.channel_variables()[-1] == (V.ROUTE, "emergency")
    assert IvrOutcome.from_json(emergency.to_json()) == emergency


def test_an_outcome_from_outside_is_checked() -> None:
    with pytest.raises(ValueError):
        IvrOutcome.from_json({"route": "dial", "seat": "gjj"})
    with pytest.raises(ValueError):
        IvrOutcome.from_json({"route": "queue", "priority": "9; DROP"})


# ---- the draft -------------------------------------------------------------------------------
def test_the_speech_message_is_parsed_in_one_place() -> None:
    message = {
        "call_id": "c1",
        "listen_id": "L1",
        "engine": "vosk",
        "audio_path": "/a.wav",
        "fields": {"seat": "gjj", "transcript": "身份证****1234", "emergency_heard": []},
    }
    for raw in (message, json.dumps(message), json.dumps(message).encode()):
        draft = TicketDraft.parse(raw)
        assert draft is not None and draft.listen_id == "L1" and draft.usable == message["fields"]
    stored = TicketDraft.parse(message).stored("13900001111")  # type: ignore[union-attr]
    assert stored["seat"] == "gjj" and stored["engine"] == "vosk" and stored["audio"] == "/a.wav"
    assert "emergency_heard" not in stored and stored["caller"] == "13900001111"
    for bad in ("not json", b"\xff", "[1,2]", None):
        assert TicketDraft.parse(bad) is None
        assert decode_message(bad) is None  # the same decoder reads every stored draft
    assert decode_message(json.dumps(stored)) == stored


# ---- events ----------------------------------------------------------------------------------
def test_an_event_survives_the_stream_and_garbage_is_refused_with_a_reason() -> None:
    e = event("ivr", outcome={"route": "hangup"})
    assert CallEvent.from_fields({k.encode(): v.encode() for k, v in e.to_fields().items()}) == e
    for bad, why in (
        ({"kind": "bogus", "call_id": "1", "at": "1"}, "unknown kind"),
        ({"kind": "ended", "call_id": "x y;", "at": "1"}, "call_id"),
        ({"kind": "ended", "call_id": "1.2", "at": "soon"}, "time"),
        ({"kind": "ended", "call_id": "1.2", "at": "1", "data": "{"}, "JSON"),
        ({"kind": "ended", "call_id": "1.2", "at": "1", "data": "[]"}, "object"),
    ):
        with pytest.raises(MalformedEvent, match=why):
            CallEvent.from_fields(bad)


# ---- the record ------------------------------------------------------------------------------
def scenario(*events: CallEvent) -> CallRecord:
    rec = CallRecord(events[0].call_id)
    for e in events:
        rec.apply(e)
    return rec


def test_record_of_a_caller_who_reached_the_gjj_agent() -> None:
    out = IvrOutcome("queue", "main>2", seat="gjj", queue="seat_gjj", via="key").to_json()
    rec = scenario(
        event("started", at=10.0, caller_masked="138****1111", caller_hash="ab", withheld=False),
        event("ivr", at=15.0, outcome=out, caller_flag="normal"),
        event("route", at=15.1, seat="gjj", queue="seat_gjj", ivr_path="main>2"),
        event("agent", at=18.0, agent="1002", queue="seat_gjj"),
        event("ended", at=60.0, cause="Normal Clearing"),
    )
    assert (rec.outcome, rec.seat, rec.queue, rec.agents[0]["agent"]) == (
        "agent",
        "gjj",
        "seat_gjj",
        "1002",
    )
    assert rec.ivr is not None and rec.ivr.ivr_path == "main>2"
    assert (rec.started_at, rec.ended_at, rec.caller.masked) == (10.0, 60.0, "138****1111")
    assert CallRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec


def test_record_of_emergency_notice_fallback_and_hang_up_in_the_menu() -> None:
    emergency = scenario(
        event("ivr", outcome={"route": "emergency", "emergency_line": "119", "ivr_path": "main>9"}),
        event("emergency", line="119", reason="key:main>9>emergency>2"),
        event("ended"),
    )
    assert (emergency.outcome, emergency.emergency_line) == ("emergency", "119")
    notice = scenario(
        event("ivr", outcome={"route": "hangup", "notice": "privacy", "ivr_path": "main>5"}),
        event("notice", reason="privacy", route="hangup"),
        event("ended"),
    )
    assert (notice.outcome, notice.notice) == ("notice", "privacy")
    fallback = scenario(event("fallback", reason="agi-FAILURE", seat="zonghe"), event("ended"))
    assert (fallback.outcome, fallback.seat, fallback.fallback_reasons) == (
        "fallback",
        "zonghe",
        ["agi-FAILURE"],
    )
    menu = scenario(event("started"), event("ended", cause="Normal Clearing"))
    assert menu.outcome == "abandoned" and menu.ended


# ---- the AMI bridge --------------------------------------------------------------------------
def test_the_bridge_identifies_calls_by_the_channel_ids_never_by_the_caller() -> None:
    bridge = AmiBridge(KEY, clock=lambda: 5.0)
    first = {"Uniqueid": "170.1", "Linkedid": "170.1"}
    started = bridge.translate(
        {"Event": "UserEvent", "UserEvent": "HotlineCall", "CallerIDNum": "13800001111", **first}
    )
    assert started is not None and started.call_id == "170.1" and started.kind == "started"
    assert started.data == {
        "caller_masked": "138****1111",
        "caller_hash": KEY.hash("13800001111"),
        "withheld": False,
    }
    route = bridge.translate(
        {
            "Event": "UserEvent",
            "UserEvent": "HotlineRoute",
            "CallId": "evil",
            "Seat": "gjj",
            "Queue": "seat_gjj",
            "Path": "main>2",
            **first,
        }
    )
    assert route is not None and route.call_id == "170.1" and route.data["seat"] == "gjj"
    agent = bridge.translate(
        {
            "Event": "AgentConnect",
            "MemberName": "agent1002",
            "Uniqueid": "170.1",
            "Linkedid": "170.1",
            "Queue": "seat_gjj",
        }
    )
    assert agent is not None and agent.data["agent"] == "1002"
    # a call the ACD router carried: its Dial context's answered DialEnd names the agent;
    # other dials (the emergency line, an unanswered ring) name nobody
    dial = {"Event": "DialEnd", "DialStatus": "ANSWER", "Context": "hotline-acd-dial",
            "DestChannel": "PJSIP/agent1003-0000002b", **first}  # fmt: skip
    routed = bridge.translate(dial)
    assert routed is not None and routed.data == {"agent": "1003", "queue": "acd"}
    assert bridge.translate({**dial, "DialStatus": "NOANSWER"}) is None
    assert bridge.translate({**dial, "Context": "hotline-route"}) is None
    assert bridge.translate({**dial, "DestChannel": "PJSIP/119@emergency-00000001"}) is None
    leg = {"Event": "Hangup", "Uniqueid": "170.2", "Linkedid": "170.1"}
    assert bridge.translate(leg) is None  # the agent's leg ending does not end the call
    ended = bridge.translate({"Event": "Hangup", "Cause-txt": "Normal Clearing", **first})
    assert ended is not None and ended.kind == "ended"
    assert bridge.translate({"Event": "Hangup", "Uniqueid": "9.9", "Linkedid": "9.9"}) is None
    assert bridge.translate({"Event": "UserEvent", "UserEvent": "HotlineRoute"}) is None
    # the ACD calls the caller back on a leg with the call's id: its agent and end count again
    assert bridge.translate(dial) is None  # the call had ended
    up = {"Event": "UserEvent", "UserEvent": "AcdCallbackUp", **first}
    assert bridge.translate(up) is None
    assert bridge.translate(dial).data == {"agent": "1003", "queue": "acd"}  # type: ignore[union-attr]
    assert bridge.translate({"Event": "Hangup", **first}).kind == "ended"  # type: ignore[union-attr]
    assert bridge.translate({**up, "Uniqueid": "170.2"}) is None  # not the call's own leg
    assert bridge.translate(dial) is None


# ---- the store and the command ---------------------------------------------------------------
async def test_the_store_applies_each_entry_once_and_answers_queries(tmp_path: Path) -> None:
    store = SqliteCallStore(tmp_path / "calls.sqlite3")
    await store.apply(event("started", "1.1", at=100.0, caller_hash="h1", withheld=False), "1-0")
    await store.apply(event("route", "1.1", at=101.0, seat="gjj", queue="seat_gjj"), "1-1")
    again = await store.apply(event("route", "1.1", at=101.0, seat="gjj"), "1-1")
    assert again.events == 2
    await store.apply(
        event("fallback", "2.1", at=200.0, reason="agi-FAILURE", seat="zonghe"), "2-0"
    )
    assert [r.call_id for r in await store.list()] == ["2.1", "1.1"]
    assert [r.call_id for r in await store.list(seat="gjj")] == ["1.1"]
    assert [r.call_id for r in await store.list(since=150.0)] == ["2.1"]
    assert [r.call_id for r in await store.list(caller_hash="h1")] == ["1.1"]
    assert [r.call_id for r in await store.list(outcome="fallback")] == ["2.1"]
    assert (await store.get("1.1")).seat == "gjj"  # type: ignore[union-attr]
    assert await store.get("nope") is None
    await store.close()
    assert (tmp_path / "calls.sqlite3").stat().st_mode & 0o077 == 0


def test_hotline_calls_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "calls.sqlite3"

    async def fill() -> None:
        store = SqliteCallStore(path)
        await store.apply(event("started", "7.1", at=1.7e9, caller_masked="138****1111"), "1-0")
        await store.apply(event("route", "7.1", at=1.7e9, seat="gjj", queue="seat_gjj"), "1-1")
        await store.close()

    asyncio.run(fill())
    assert hotline(["calls", "list", "--store", str(path), "--seat", "gjj"]) == 0
    out = capsys.readouterr().out
    assert "7.1" in out and "138****1111" in out and "call id" in out
    assert hotline(["calls", "list", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seat"] == "gjj"
    assert hotline(["calls", "show", "7.1", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "queue"
    assert hotline(["calls", "show", "8.8", "--store", str(path)]) == 1


# ---- two listens in one call (issue 7: keep_call_draft waits for its own listen) -------------
class Drafts:
    def __init__(self) -> None:
        self.saved: list[dict] = []

    async def save_draft(self, call_id: str, draft: dict) -> None:
        self.saved.append(draft)


async def test_the_second_listens_draft_is_stored_not_the_first_one() -> None:
    from speech.drafts import keep_call_draft
    from speech.service import ALIVE_KEY

    def msg(listen: str, seat: str) -> CallEvent:
        message = {"call_id": "c9", "listen_id": listen, "fields": {"seat": seat}}
        return draft_event(message, time.time())

    first = msg("11111111-1111-4111-8111-111111111111", "gjj")
    second = msg("22222222-2222-4222-8222-222222222222", "renshe")
    redis = CallStream(StreamRedis({ALIVE_KEY}, [first], later=[second]))
    store = Drafts()
    kept = await keep_call_draft(
        redis, store, "c9", wait_s=2.0, listen_id="22222222-2222-4222-8222-222222222222"
    )
    assert kept is not None and kept["seat"] == "renshe"
    # and the first listen's keeper finds its own draft even after the second one landed
    late = CallStream(StreamRedis({ALIVE_KEY}, [first, second]))
    kept = await keep_call_draft(
        late, store, "c9", wait_s=2.0, listen_id="11111111-1111-4111-8111-111111111111"
    )
    assert [d["seat"] for d in store.saved] == ["renshe", "gjj"]


def test_a_caller_who_heard_an_article_and_pressed_2_is_self_served() -> None:
    rec = CallRecord("1700000000.9")
    offered = {"action": "offered", "article": "gjj-rent", "version": 1, "title": "租房提取公积金"}
    for e in (
        event("started", "1700000000.9", 1.0, caller_masked="139****1111", withheld=False),
        event("kb", "1700000000.9", 20.0, **offered),
        event("kb", "1700000000.9", 20.0, **offered),  # delivered twice: kept once
        event("kb", "1700000000.9", 80.0, action="self_served", article="gjj-rent"),
        event("kb", "1700000000.9", 81.0, action="deleted-everything", article="gjj-rent"),
        event("kb", "1700000000.9", 82.0, action="answered", version=True, article=["x"]),
        event("ended", "1700000000.9", 90.0, cause="16"),
    ):
        rec.apply(e)
    assert [k["action"] for k in rec.kb] == ["offered", "self_served", "answered"]
    assert rec.kb[2] == {"action": "answered", "at": 82.0}  # bad values dropped, not kept
    assert rec.outcome == "self_served" and rec.to_json()["outcome"] == "self_served"
    assert CallRecord.from_json(rec.to_json()).kb == rec.kb
