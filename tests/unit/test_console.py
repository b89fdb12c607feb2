"""The agent console without a stack: masking, statistics, the feed hub, the call follower fed
recorded AMI events, and the HTTP API over a real SQLite ticket store and a fake throttle."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from console.app import Services, make_app
from console.feed import FeedHub, sse
from console.follow import CallFollower
from console.stats import StatsError, demand_stats, rows
from console.views import draft_view, mask_text
from hotline.call import agent_id_of
from hotline.config import HotlineConfig, load_config
from hotline.privacy import CallerKey
from speech.drafts import stored_draft
from tickets.sqlite import SqliteTicketStore

REPO = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    path.write_text(text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3")))
    return load_config(path)


@pytest.fixture
async def store(tmp_path: Path, config: HotlineConfig):
    s = SqliteTicketStore(
        config.tickets.path,
        CallerKey(b"k" * 32),
        clock=lambda: datetime(2026, 5, 4, 9, 30, tzinfo=TZ),
    )
    yield s
    await s.close()


def message(call_id: str, seat: str = "gjj", **fields: object) -> dict:
    """What the speech service publishes for one listen."""
    base = {
        "transcript": "我想咨询一下公积金提取",
        "type": "咨询",
        "seat": seat,
        "district": None,
        "callback": None,
        "summary": "【咨询/公积金】提取",
        "demands": [{"type": "咨询", "seat": seat, "summary": "提取"}],
        "confidence": {"seat": 0.9},
        "emergency_heard": {},
    }
    return {
        "call_id": call_id,
        "listen_id": "L1",
        "transcript": "raw text 110101199003071234",
        "fields": {**base, **fields},
        "audio_path": "/x/a.wav",
        "latency_s": 0.2,
        "engine": "whisper",
    }


# ---- masking --------------------------------------------------------------------------------
def test_long_numbers_in_what_the_caller_said_are_masked_short_ones_kept() -> None:
    assert mask_text("我的电话是13805712345") == "我的电话是138****2345"
    assert mask_text("号码一三八零五七一二三四五请回电") == "号码一三八****二三四五请回电"
    assert mask_text("手机138-0571-2345") == "手机138****2345"
    assert mask_text("晚上11点，3个月") == "晚上11点，3个月"


def test_a_draft_on_screen_shows_no_full_number() -> None:
    view = draft_view(
        {"caller": "13900001111", "callback": "13805712345", "transcript": "回电13805712345",
         "summary": "回电13805712345", "demands": [{"summary": "13805712345"}]}
    )  # fmt: skip
    assert "13805712345" not in json.dumps(view) and "13900001111" not in json.dumps(view)
    assert view["caller"] == "139****1111" and view["callback"] == "138****2345"
    assert draft_view(None) is None


def test_the_stored_draft_keeps_the_masked_transcript_not_the_recogniser_text() -> None:
    record = stored_draft(message("c1"), caller="13900001111")
    assert record["transcript"] == "我想咨询一下公积金提取"
    assert "110101199003071234" not in json.dumps(record, ensure_ascii=False)
    assert record["audio"] == "/x/a.wav" and record["caller"] == "13900001111"
    assert "emergency_heard" not in record and record["seat"] == "gjj"
    assert stored_draft({"call_id": "c2", "fields": None, "error": "boom"})["speech_error"]


# ---- statistics -----------------------------------------------------------------------------
def test_demands_are_counted_by_district_seat_type_and_local_hour() -> None:
    records = [
        (json.dumps({"district": "西湖区", "seat": "gjj", "type": "咨询",
                     "demands": [{"seat": "gjj", "type": "咨询"}]}), "2026-05-04T09:10:00+08:00"),
        (json.dumps({"district": None, "seat": "renshe", "type": "咨询",
                     "demands": [{"seat": "renshe", "type": "咨询"},
                                 {"seat": "gjj", "type": "咨询"}]}), "2026-05-04T01:10:00+00:00"),
        (json.dumps({"seat": None, "demands": []}), "2026-05-04T09:20:00+08:00"),
        ("not json", "2026-05-04T09:20:00+08:00"),
    ]  # fmt: skip
    out = demand_stats(records)
    assert out["drafts"] == 2 and out["demands"] == 3
    assert out["by_seat"] == {"gjj": 2, "renshe": 1}
    assert out["by_district"] == {"未识别": 1, "西湖区": 1}
    assert out["by_hour"] == {"09": 2}  # 01:10 UTC is 09:10 in Hangzhou
    assert demand_stats(records, since="2026-05-04T09:15")["drafts"] == 0


def test_a_corrected_seat_is_what_the_statistics_count() -> None:
    corrected = {"seat": "jiaotong", "type": "投诉", "demands": [{"seat": "gjj", "type": "咨询"}]}
    out = demand_stats([(json.dumps(corrected), "2026-05-04T09:10:00+08:00")])
    assert out["by_seat"] == {"jiaotong": 1} and out["by_type"] == {"投诉": 1}


def test_bad_statistics_periods_are_refused() -> None:
    with pytest.raises(StatsError, match="ISO"):
        demand_stats([], since="yesterday")
    with pytest.raises(StatsError, match="after"):
        demand_stats([], since="2026-05-04", until="2026-05-01")
    assert rows("/nonexistent/t.sqlite3") == []


# ---- the feed hub ---------------------------------------------------------------------------
async def test_an_agent_who_opens_the_screen_mid_call_gets_the_call_at_once() -> None:
    hub = FeedHub()
    hub.publish("1002", {"event": "call", "call_id": "c1", "draft": None})
    hub.publish("1002", {"event": "draft", "call_id": "c1", "draft": {"seat": "gjj"}})
    q = hub.subscribe("1002")
    assert q.get_nowait() == {"event": "call", "call_id": "c1", "draft": {"seat": "gjj"}}
    assert hub.publish("1009", {"event": "call", "call_id": "c2"}) == 0  # nobody watching
    hub.publish("1002", {"event": "hangup", "call_id": "c1"})
    assert q.get_nowait()["event"] == "hangup" and "1002" not in hub.current
    assert sse({"event": "x", "v": "中"}) == 'event: x\ndata: {"event": "x", "v": "中"}\n\n'


# ---- following AMI --------------------------------------------------------------------------
def test_agent_ids_come_from_the_queue_member() -> None:
    assert agent_id_of({"MemberName": "agent1009"}) == "1009"
    assert agent_id_of({"Interface": "PJSIP/agent1002"}) == "1002"
    assert agent_id_of({"DestChannel": "PJSIP/agent1005-0000000c"}) == "1005"
    assert agent_id_of({"MemberName": "carrier"}) == ""


async def test_the_answering_agent_gets_the_call_with_its_draft_and_later_the_hangup(
    config, store
) -> None:
    hub = FeedHub()
    follower = CallFollower(config, hub, store, redis=None, clock=lambda: 1000.0)
    await store.save_draft("171.5", stored_draft(message("171.5"), caller="13900001111"))
    screen = hub.subscribe("1009")
    other = hub.subscribe("1002")
    variables = {"HOTLINE_CALLER_FLAG": "warning", "HOTLINE_CALL_ID": "171.5"}

    async def getvar(channel: str, name: str) -> str:
        assert channel == "PJSIP/carrier-0000000a"
        return variables.get(name, "")

    for event in (
        {"Event": "UserEvent", "UserEvent": "HotlineRoute", "Linkedid": "171.5",
         "CallId": "171.5", "Seat": "gjj", "Queue": "seat_gjj", "Path": "main>2"},
        {"Event": "AgentConnect", "Linkedid": "171.5", "Channel": "PJSIP/carrier-0000000a",
         "CallerIDNum": "13900001111", "MemberName": "agent1009", "Queue": "seat_gjj",
         "DestChannel": "PJSIP/agent1009-0000000b"},
        {"Event": "Hangup", "Linkedid": "171.5", "Channel": "PJSIP/agent1009-0000000b"},
        {"Event": "Hangup", "Linkedid": "171.5", "Channel": "PJSIP/carrier-0000000a"},
    ):  # fmt: skip
        await follower.on_ami_event(event, getvar)

    call = screen.get_nowait()
    assert call["event"] == "call" and call["call_id"] == "171.5" and call["agent"] == "1009"
    assert (call["seat"], call["ivr_path"], call["caller_flag"]) == ("gjj", "main>2", "warning")
    assert call["caller"] == "139****1111" and call["draft"]["caller"] == "139****1111"
    assert call["draft"]["seat"] == "gjj" and call["seat_name"] == "公积金专席"
    assert screen.get_nowait() == {"event": "hangup", "call_id": "171.5"}
    assert other.empty() and follower.calls == {}


async def test_a_draft_finished_after_the_answer_reaches_the_agents_screen(config, store) -> None:
    hub = FeedHub()
    follower = CallFollower(config, hub, store, redis=None)
    screen = hub.subscribe("1002")
    await follower.on_ami_event(
        {"Event": "AgentConnect", "Linkedid": "9.1", "Channel": "PJSIP/carrier-01",
         "CallerIDNum": "13900002222", "Interface": "PJSIP/agent1002"}
    )  # fmt: skip
    assert screen.get_nowait()["draft"] is None
    await follower.on_draft_message(json.dumps(message("9.1", seat="renshe")))
    await follower.on_draft_message(json.dumps(message("other-call")))  # nobody's call
    await follower.on_draft_message(b"\xff not json")
    late = screen.get_nowait()
    assert late["event"] == "draft" and late["draft"]["seat"] == "renshe"
    assert screen.empty()


# ---- the HTTP API ---------------------------------------------------------------------------
class FakeThrottle:
    """Records caller-rule actions; refuses what callers.throttle refuses."""

    def __init__(self) -> None:
        self.flags: list[tuple[str, str, str, str]] = []

    async def flag_harassment(self, caller: str, by: str, note: str, call_id: str = "") -> int:
        if not caller.isdigit():
            raise ValueError(f"not a caller number: {caller!r}")
        self.flags.append((caller, by, note, call_id))
        return len(self.flags)

    async def lift(self, caller: str, by: str, why: str, *, clear_referral: bool = False) -> str:
        if not why.strip():
            raise ValueError("a lift needs a reason")
        return "warning"

    async def audit(self, caller: str | None = None, count: int = 100) -> list:
        raise ConnectionError("redis down")

    async def referrals(self) -> list:
        return []


@pytest.fixture
async def api(config, store):
    throttle = FakeThrottle()
    follower = CallFollower(config, FeedHub(), store, redis=None)
    app = make_app(config, Services(store=store, throttle=throttle, follower=follower))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield client, throttle, config
    await asyncio.sleep(0)


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_without_the_token_nothing_is_shown_or_changed(api, store) -> None:
    client, _, config = api
    await store.save_draft("c1", stored_draft(message("c1")))
    assert (await client.get("/api/drafts/c1")).status_code == 401
    assert (
        await client.get("/api/drafts/c1", headers=auth("wrong-token-123456"))
    ).status_code == 401
    r = await client.get("/api/drafts/c1", headers=auth(config.console.token))
    assert r.status_code == 200 and r.json()["draft"]["seat"] == "gjj"
    # the agents' token does not open the supervisor endpoints
    r = await client.get("/api/supervisor/referrals", headers=auth(config.console.token))
    assert r.status_code == 401


async def test_a_correction_is_kept_and_a_bad_one_changes_nothing(api, store) -> None:
    client, _, config = api
    await store.save_draft("c1", stored_draft(message("c1")))
    h = auth(config.console.token)
    for bad in (
        {"who": "1002", "fields": {"seat": "nowhere"}},
        {"who": "1002", "fields": {"type": "聊天"}},
        {"who": "1002", "fields": {"district": "火星区"}},
        {"who": "", "fields": {"seat": "gjj"}},
        {"who": "1002", "fields": {}},
        {"who": "1002", "fields": {"caller": "110"}},
    ):
        r = await client.patch("/api/drafts/c1", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    assert await store.corrections("c1") == []
    r = await client.patch("/api/drafts/c1", json={"who": "1002", "fields": {"seat": "renshe",
                           "district": "西湖区"}}, headers=h)  # fmt: skip
    assert r.status_code == 200 and r.json()["draft"]["seat"] == "renshe"
    kept = await store.corrections("c1")
    assert [(c.field, c.old, c.new, c.who) for c in kept] == [
        ("seat", "gjj", "renshe", "1002"), ("district", None, "西湖区", "1002")
    ]  # fmt: skip
    r = await client.patch("/api/drafts/none", json={"who": "1", "fields": {"seat": "gjj"}},
                           headers=h)  # fmt: skip
    assert r.status_code == 404


async def test_only_the_callback_endpoint_gives_the_numbers_in_full(api, store) -> None:
    client, _, config = api
    draft = stored_draft(message("c1", callback="13805712345"), caller="13900001111")
    await store.save_draft("c1", draft)
    h = auth(config.console.token)
    shown = (await client.get("/api/drafts/c1", headers=h)).text
    assert "13805712345" not in shown and "13900001111" not in shown
    r = await client.get("/api/calls/c1/callback", params={"agent": "1002"}, headers=h)
    assert r.json() == {"call_id": "c1", "caller": "13900001111", "callback": "13805712345"}
    r = await client.get("/api/calls/c1/callback", params={"agent": "777"}, headers=h)
    assert r.status_code == 404


async def test_caller_rules_through_the_console(api, store) -> None:
    client, throttle, config = api
    await store.save_draft("c1", stored_draft(message("c1"), caller="13900001111"))
    agent, sup = auth(config.console.token), auth(config.console.supervisor_token)
    r = await client.post("/api/calls/c1/harassment", json={"by": "1002", "note": "辱骂"},
                          headers=agent)  # fmt: skip
    assert r.json() == {"call_id": "c1", "caller": "139****1111", "flags": 1}
    assert throttle.flags == [("13900001111", "1002", "辱骂", "c1")]
    r = await client.post("/api/supervisor/callers/harassment",
                          json={"caller": "abc", "by": "s", "note": "x"}, headers=sup)  # fmt: skip
    assert r.status_code == 422 and len(throttle.flags) == 1
    lift = {"caller": "13900001111", "by": "s", "why": " "}
    r = await client.post("/api/supervisor/callers/lift", json=lift, headers=sup)
    assert r.status_code == 422
    r = await client.get("/api/supervisor/audit", headers=sup)
    assert r.status_code == 503  # Redis down: said so, not a crash


async def test_demand_statistics_read_the_stored_drafts(api, store) -> None:
    client, _, config = api
    await store.save_draft("c1", stored_draft(message("c1", district="西湖区")))
    await store.save_draft("c2", stored_draft(message("c2", seat="renshe")))
    sup = auth(config.console.supervisor_token)
    out = (await client.get("/api/stats/demand", headers=sup)).json()
    assert out["drafts"] == 2 and out["by_seat"] == {"gjj": 1, "renshe": 1}
    assert out["by_district"] == {"未识别": 1, "西湖区": 1} and out["by_hour"] == {"09": 2}
    r = await client.get("/api/stats/demand", params={"since": "soon"}, headers=sup)
    assert r.status_code == 422


async def test_an_unknown_agent_has_no_feed(api) -> None:
    client, _, config = api
    r = await client.get("/api/agents/4242/feed", headers=auth(config.console.token))
    assert r.status_code == 404


def test_the_websocket_feed_carries_the_same_events_and_needs_the_token(config) -> None:
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    hub = FeedHub()
    app = make_app(config, Services(hub=hub))
    with TestClient(app) as client:
        bad = "/api/agents/1002/ws?token=wrong-token-123456"
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(bad) as ws:
            ws.receive_json()
        assert refused.value.code == 1008
        url = f"/api/agents/1002/ws?token={config.console.token}"
        with client.websocket_connect(url) as ws:
            assert ws.receive_json() == {"event": "hello", "agent": "1002"}
            hub.publish("1002", {"event": "call", "call_id": "c9", "draft": None})
            hub.publish("1009", {"event": "call", "call_id": "other"})
            hub.publish("1002", {"event": "hangup", "call_id": "c9"})
            assert ws.receive_json()["call_id"] == "c9"
            assert ws.receive_json() == {"event": "hangup", "call_id": "c9"}


# ---- drafts kept by the IVR (speech.drafts.keep_call_draft) ---------------------------------
class FakeRedis:
    """The few Redis calls keep_call_draft makes (GET/EXISTS and a silent subscription)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def exists(self, key: str) -> int:
        return int(key in self.values)

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    def pubsub(self) -> FakeRedis:
        return self

    async def subscribe(self, *_: str) -> None:
        return None

    async def get_message(self, **_: object) -> None:
        await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        return None


class BrokenStore:
    async def save_draft(self, call_id: str, draft: dict) -> None:
        raise OSError("disk full")


async def test_the_ivr_keeps_the_draft_with_the_callers_number(store) -> None:
    from speech.drafts import keep_call_draft
    from speech.service import ALIVE_KEY, DRAFT_KEY

    redis = FakeRedis({ALIVE_KEY: "1", DRAFT_KEY.format(call_id="c7"): json.dumps(message("c7"))})
    record = await keep_call_draft(redis, store, "c7", "13900001111", wait_s=1.0)
    assert record is not None and record["seat"] == "gjj"
    kept = await store.get_draft("c7")
    assert kept["caller"] == "13900001111" and kept["audio"] == "/x/a.wav"
    # a store that fails: logged, nothing raised into the call
    assert await keep_call_draft(redis, BrokenStore(), "c7", wait_s=1.0) is None


async def test_without_a_speech_service_nothing_is_waited_for(store) -> None:
    from speech.drafts import keep_call_draft

    started = asyncio.get_running_loop().time()
    assert await keep_call_draft(FakeRedis({}), store, "c8", wait_s=30.0) is None
    assert asyncio.get_running_loop().time() - started < 1.0
    assert await store.get_draft("c8") is None
