"""The agent console without a stack: masking, statistics, the feed hub, the call follower fed
recorded AMI events, and the HTTP API over a real SQLite ticket store and a fake throttle."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from argon2 import PasswordHasher
from stream_fakes import StreamRedis, draft_event

from access import AccessStore
from calls.stream import CallStream
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
    assert mask_text("号码一三八零五七一二三四五请回电") == "号码138****2345请回电"
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


async def test_a_call_the_acd_router_carried_pops_up_on_the_answering_agents_screen(
    config, store
) -> None:
    """No AgentConnect without app_queue: the DialEnd (ANSWER) of the router's Dial context
    on the caller's channel is the answer; an unanswered ring shows nothing."""
    hub = FeedHub()
    follower = CallFollower(config, hub, store, redis=None)
    screen, rung = hub.subscribe("1003"), hub.subscribe("1002")
    dial = {"Event": "DialEnd", "Linkedid": "172.1", "Channel": "PJSIP/carrier-0000000c",
            "CallerIDNum": "13900003333", "Context": "hotline-acd-dial"}  # fmt: skip
    await follower.on_ami_event(
        {**dial, "DialStatus": "NOANSWER", "DestChannel": "PJSIP/agent1002-0000000d"}
    )
    await follower.on_ami_event(
        {**dial, "DialStatus": "ANSWER", "DestChannel": "PJSIP/agent1003-0000000e"}
    )
    call = screen.get_nowait()
    assert call["event"] == "call" and call["agent"] == "1003" and call["call_id"] == "172.1"
    assert call["caller"] == "139****3333"
    assert rung.empty()


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
PASSWORD = "correct-horse-battery-1"
USERS = (
    ("a1002", "agent", "1002", None),
    ("a1009", "agent", "1009", None),
    ("sup", "supervisor", None, None),
    ("qa1", "qa", None, None),
    ("admin", "admin", None, None),
    ("dept", "department", None, "市住房公积金中心"),
)


class FakeThrottle:
    """Records caller-rule actions; refuses what callers.throttle refuses; remembers request
    ids like the Redis script (a second flag with one id adds nothing)."""

    def __init__(self) -> None:
        self.flags: list[tuple[str, str, str, str]] = []
        self.request_ids: set[str] = set()
        self.fail_after_storing = False

    async def flag_harassment(
        self, caller: str, by: str, note: str, call_id: str = "", *, request_id: str = ""
    ) -> int:
        if not caller.isdigit():
            raise ValueError(f"not a caller number: {caller!r}")
        if request_id not in self.request_ids:
            self.request_ids.add(request_id)
            self.flags.append((caller, by, note, call_id))
        if self.fail_after_storing:
            raise TimeoutError("the reply was lost")
        return len(self.flags)

    async def flag_stored(self, request_id: str) -> bool:
        return request_id in self.request_ids

    async def lift(self, caller: str, by: str, why: str, *, clear_referral: bool = False) -> str:
        if not why.strip():
            raise ValueError("a lift needs a reason")
        return "warning"

    async def audit(self, caller: str | None = None, count: int = 100) -> list:
        raise ConnectionError("redis down")

    async def referrals(self) -> list:
        return []


class DownThrottle(FakeThrottle):
    async def flag_harassment(self, *args: object, **kwargs: object) -> int:
        raise ConnectionError("redis down")

    async def flag_stored(self, request_id: str) -> bool:
        raise ConnectionError("redis down")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def fast_store(path: Path, clock: Clock | None = None) -> AccessStore:
    """An access store with cheap argon2 parameters (the defaults are tested on their own)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return AccessStore(path, clock=clock or Clock(), hasher=hasher)


class Console:
    """The API over httpx with the users above; ``as_(name)`` logs in and returns headers."""

    def __init__(self, client, throttle, config, follower, access, clock) -> None:
        self.client, self.throttle, self.config = client, throttle, config
        self.follower, self.access, self.clock = follower, access, clock

    async def as_(self, name: str) -> dict[str, str]:
        r = await self.client.post(
            "/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
        )
        assert r.status_code == 200, r.text
        self.client.cookies.clear()  # the bearer token only
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def on_call(self, agent: str, call_id: str, caller: str = "13900001111") -> None:
        """Agent ``agent`` answers ``call_id`` (as app_queue's AgentConnect says)."""
        await self.follower.on_ami_event(
            {"Event": "AgentConnect", "Linkedid": call_id, "Channel": "PJSIP/carrier-01",
             "CallerIDNum": caller, "Interface": f"PJSIP/agent{agent}"}
        )  # fmt: skip

    async def hang_up(self, call_id: str) -> None:
        await self.follower.on_ami_event(
            {"Event": "Hangup", "Linkedid": call_id, "Channel": "PJSIP/carrier-01"}
        )


def console_app(config, store, access, throttle=None, hub=None):
    follower = CallFollower(config, hub or FeedHub(), store, redis=None)
    services = Services(store=store, throttle=throttle, follower=follower, hub=follower.hub)
    return make_app(config, services, access=access), follower


@pytest.fixture
async def api(config, store, tmp_path):
    clock = Clock()
    access = fast_store(tmp_path / "access.sqlite3", clock)
    for name, role, agent, department in USERS:
        access.add_user(name, PASSWORD, role, agent, department)
    throttle = FakeThrottle()
    app, follower = console_app(config, store, access, throttle)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield Console(client, throttle, config, follower, access, clock)
    await asyncio.sleep(0)


async def test_without_a_session_nothing_is_shown_or_changed(api, store) -> None:
    await store.save_draft("c1", stored_draft(message("c1")))
    c = api.client
    assert (await c.get("/api/drafts/c1")).status_code == 401
    wrong = {"Authorization": "Bearer not-a-session-token"}
    assert (await c.get("/api/drafts/c1", headers=wrong)).status_code == 401
    agent = await api.as_("a1002")
    token = agent["Authorization"][7:]
    # a token in the query string is not a session (it would land in logs)
    assert (await c.get("/api/drafts/c1", params={"token": token})).status_code == 401
    r = await c.get("/api/drafts/c1", headers=agent)
    assert r.status_code == 200 and r.json()["draft"]["seat"] == "gjj"
    # an agent's session does not open the supervisor endpoints
    assert (await c.get("/api/supervisor/referrals", headers=agent)).status_code == 403
    assert (await c.get("/api/admin/audit", headers=agent)).status_code == 403


async def test_a_browser_logs_in_with_an_httponly_cookie_and_logs_out(api) -> None:
    c = api.client
    r = await c.post("/api/login", json={"name": "a1002", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["token"] is None  # the page never sees it
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
    me = await c.get("/api/me")
    assert me.json() == {"name": "a1002", "role": "agent", "agent": "1002", "department": None,
                         "expires_at": None, "token": None}  # fmt: skip
    assert (await c.post("/api/logout")).status_code == 204
    c.cookies.clear()
    assert (await c.get("/api/me")).status_code == 401


async def test_a_session_ends_at_its_expiry_on_a_new_password_and_when_disabled(api) -> None:
    c = api.client
    h = await api.as_("a1002")
    api.clock.now += 8 * 3600 + 1
    assert (await c.get("/api/me", headers=h)).status_code == 401
    h = await api.as_("a1002")
    api.access.set_password("a1002", "another-password-2")
    assert (await c.get("/api/me", headers=h)).status_code == 401
    h = await api.as_("sup")
    api.access.disable("sup")
    assert (await c.get("/api/me", headers=h)).status_code == 401
    r = await c.post("/api/login", json={"name": "sup", "password": PASSWORD})
    assert r.status_code == 401


async def test_guessing_passwords_is_stopped_per_user_and_per_address(api) -> None:
    c = api.client
    for _ in range(5):
        r = await c.post("/api/login", json={"name": "sup", "password": "guess-guess-1"})
        assert r.status_code == 401
    r = await c.post("/api/login", json={"name": "sup", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # even the right one
    for i in range(14):  # 5 + 14 + 1 = 20 failures from this address, many names
        await c.post("/api/login", json={"name": f"nobody{i}", "password": "guess-guess-1"})
    assert (await c.post("/api/login", json={"name": "qa1", "password": "x"})).status_code == 401
    r = await c.post("/api/login", json={"name": "qa1", "password": PASSWORD})
    assert r.status_code == 429
    api.clock.now += 15 * 60 + 1  # the window has passed
    assert (await c.post("/api/login", json={"name": "sup", "password": PASSWORD})).is_success


async def test_an_agent_sees_only_their_own_feed_and_screen(api) -> None:
    c = api.client
    a1002, a1009, sup = await api.as_("a1002"), await api.as_("a1009"), await api.as_("sup")
    await api.on_call("1002", "c5")
    r = await c.get("/api/agents/1002/current", headers=a1002)
    assert r.status_code == 200 and r.json()["call"]["call_id"] == "c5"
    assert (await c.get("/api/agents/1002/current", headers=a1009)).status_code == 403
    assert (await c.get("/api/agents/1002/feed", headers=a1009)).status_code == 403
    assert (await c.get("/api/agents/1002/feed", headers=sup)).status_code == 403


async def test_a_correction_is_kept_under_the_session_user_and_a_bad_one_changes_nothing(
    api, store
) -> None:
    await store.save_draft("c1", stored_draft(message("c1")))
    h = await api.as_("a1002")
    for bad in (
        {"fields": {"seat": "nowhere"}},
        {"fields": {"type": "聊天"}},
        {"fields": {"district": "火星区"}},
        {"fields": {}},
        {"fields": {"caller": "110"}},
        {"nofields": 1},
        {"who": "a1009", "fields": {"seat": "renshe"}},  # identity comes from the session
    ):
        r = await api.client.patch("/api/drafts/c1", json=bad, headers=h)
        assert r.status_code == 422 and isinstance(r.json()["detail"], str), (bad, r.text)
    assert await store.corrections("c1") == []
    fix = {"fields": {"seat": "renshe", "district": "西湖区"}}
    r = await api.client.patch("/api/drafts/c1", json=fix, headers=h)
    assert r.status_code == 200 and r.json()["draft"]["seat"] == "renshe"
    kept = await store.corrections("c1")
    assert [(c.field, c.old, c.new, c.who) for c in kept] == [
        ("seat", "gjj", "renshe", "a1002"),
        ("district", None, "西湖区", "a1002"),
    ]  # fmt: skip
    r = await api.client.patch("/api/drafts/none", json={"fields": {"seat": "gjj"}}, headers=h)
    assert r.status_code == 404
    qa = await api.as_("qa1")
    assert (await api.client.get("/api/drafts/c1", headers=qa)).status_code == 200
    assert (await api.client.patch("/api/drafts/c1", json=fix, headers=qa)).status_code == 403


async def test_only_the_agent_on_the_call_reads_the_callback_number(api, store) -> None:
    c = api.client
    draft = stored_draft(message("c1", callback="13805712345"), caller="13900001111")
    await store.save_draft("c1", draft)
    a1002, a1009, sup = await api.as_("a1002"), await api.as_("a1009"), await api.as_("sup")
    shown = (await c.get("/api/drafts/c1", headers=a1002)).text
    assert "13805712345" not in shown and "13900001111" not in shown
    assert (await c.get("/api/calls/c1/callback", headers=a1002)).status_code == 403  # not up
    await api.on_call("1002", "c1")
    r = await c.get("/api/calls/c1/callback", headers=a1002)
    assert r.json() == {"call_id": "c1", "caller": "13900001111", "callback": "13805712345"}
    assert (await c.get("/api/calls/c1/callback", headers=a1009)).status_code == 403
    assert (await c.get("/api/calls/c1/callback", headers=sup)).status_code == 403
    await api.hang_up("c1")
    assert (await c.get("/api/calls/c1/callback", headers=a1002)).status_code == 403
    records = api.access.audit(who="a1002")
    reads = [x for x in records if x["action"] == "GET /api/calls/{call_id}/callback"]
    assert [x["outcome"] for x in reads] == [403, 200, 403]
    assert reads[1]["detail"] == "caller and callback numbers read in full"
    assert reads[1]["target"] == "call_id=c1" and reads[1]["address"] == "192.0.2.7"
    assert "13900001111" not in json.dumps(api.access.audit(1000))


async def test_every_action_is_audited_and_only_admins_read_the_log(api, store) -> None:
    c = api.client
    await c.get("/api/drafts/c1")  # no session
    await c.post("/api/login", json={"name": "a1009", "password": "wrong-password-9"})
    a1009 = await api.as_("a1009")
    await c.get("/api/supervisor/referrals", headers=a1009)
    admin = await api.as_("admin")
    r = await c.get("/api/admin/audit", params={"count": 50}, headers=admin)
    assert r.status_code == 200
    seen = [(x["who"], x["action"], x["outcome"]) for x in reversed(r.json()["records"])]
    assert seen[:5] == [
        (None, "GET /api/drafts/c1", 401),
        ("a1009", "POST /api/login", 401),
        ("a1009", "POST /api/login", 200),
        ("a1009", "GET /api/supervisor/referrals", 403),
        ("admin", "POST /api/login", 200),
    ]
    assert all(x["address"] == "192.0.2.7" and x["at"] for x in r.json()["records"])
    users = (await c.get("/api/admin/users", headers=admin)).json()["users"]
    dept = next(u for u in users if u["name"] == "dept")
    assert (dept["role"], dept["department"]) == ("department", "市住房公积金中心")
    assert "hash" not in json.dumps(users)
    sup = await api.as_("sup")
    assert (await c.get("/api/admin/audit", headers=sup)).status_code == 403


async def test_a_harassment_flag_is_kept_once_per_request_and_answered_truthfully(
    api, store
) -> None:
    c, throttle = api.client, api.throttle
    await store.save_draft("c1", stored_draft(message("c1"), caller="13900001111"))
    a1002, a1009 = await api.as_("a1002"), await api.as_("a1009")
    flag = {"note": "辱骂", "request_id": "req-0001-abcd"}
    await api.on_call("1002", "c1")
    assert (await c.post("/api/calls/c1/harassment", json=flag, headers=a1009)).status_code == 403
    r = await c.post("/api/calls/c1/harassment", json=flag, headers=a1002)
    assert r.status_code == 201
    assert r.json() == {"caller": "139****1111", "call_id": "c1", "flags": 1, "replayed": False}
    again = await c.post("/api/calls/c1/harassment", json=flag, headers=a1002)  # a retry
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert throttle.flags == [("13900001111", "a1002", "辱骂", "c1")]
    long_note = {"note": "骂" * 501, "request_id": "req-0002-abcd"}
    r = await c.post("/api/calls/c1/harassment", json=long_note, headers=a1002)
    assert r.status_code == 422 and "note" in r.json()["detail"]
    huge = {"note": "x" * 10_000_000, "request_id": "req-0003-abcd"}
    r = await c.post("/api/calls/c1/harassment", json=huge, headers=a1002)
    assert r.status_code == 413 and len(throttle.flags) == 1
    # stored, then the reply from Redis was lost: still "stored"
    throttle.fail_after_storing = True
    r = await c.post("/api/calls/c1/harassment", json={"request_id": "req-0004-abcd"},
                     headers=a1002)  # fmt: skip
    assert r.status_code == 201 and r.json()["flags"] is None and len(throttle.flags) == 2


async def test_a_flag_is_503_only_when_nothing_was_stored(config, store, tmp_path) -> None:
    access = fast_store(tmp_path / "a.sqlite3")
    access.add_user("sup", PASSWORD, "supervisor")
    app, _ = console_app(config, store, access, DownThrottle())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as c:
        r = await c.post("/api/login", json={"name": "sup", "password": PASSWORD})
        body = {"caller": "13900001111", "note": "x", "request_id": "req-0005-abcd"}
        r = await c.post("/api/supervisor/callers/harassment", json=body)
    assert r.status_code == 503 and "not stored" in r.json()["detail"]


async def test_caller_rules_through_the_console(api, store) -> None:
    c, throttle = api.client, api.throttle
    sup = await api.as_("sup")
    bad = {"caller": "abc", "note": "x", "request_id": "req-0006-abcd"}
    r = await c.post("/api/supervisor/callers/harassment", json=bad, headers=sup)
    assert r.status_code == 422 and throttle.flags == []
    ok = {"caller": "13900001111", "note": "x", "request_id": "req-0007-abcd"}
    r = await c.post("/api/supervisor/callers/harassment", json=ok, headers=sup)
    assert r.status_code == 201 and throttle.flags == [("13900001111", "sup", "x", "")]
    lift = {"caller": "13900001111", "why": " "}
    assert (await c.post("/api/supervisor/callers/lift", json=lift, headers=sup)).status_code == 422
    r = await c.get("/api/supervisor/audit", headers=sup)
    assert r.status_code == 503  # Redis down: said so, not a crash


async def test_demand_statistics_read_the_stored_drafts(api, store) -> None:
    await store.save_draft("c1", stored_draft(message("c1", district="西湖区")))
    await store.save_draft("c2", stored_draft(message("c2", seat="renshe")))
    dept, agent = await api.as_("dept"), await api.as_("a1002")
    out = (await api.client.get("/api/stats/demand", headers=dept)).json()
    assert out["drafts"] == 2 and out["by_seat"] == {"gjj": 1, "renshe": 1}
    assert out["by_district"] == {"未识别": 1, "西湖区": 1} and out["by_hour"] == {"09": 2}
    r = await api.client.get("/api/stats/demand", params={"since": "soon"}, headers=dept)
    assert r.status_code == 422
    assert (await api.client.get("/api/stats/demand", headers=agent)).status_code == 403


async def test_an_agent_user_of_an_agent_not_in_the_config_has_no_feed(api) -> None:
    api.access.add_user("ghost", PASSWORD, "agent", "4242")
    h = await api.as_("ghost")
    assert (await api.client.get("/api/agents/4242/current", headers=h)).status_code == 404


# ---- bodies: the session first, then at most max_body_kb, never the whole upload ------------
async def asgi_post(app, path: str, headers: dict[str, str], chunks: int, size: int) -> tuple:
    """POST ``chunks`` × ``size`` bytes (chunked, no Content-Length) straight into the ASGI
    app; returns (status, bytes the app pulled from the client)."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled >= chunks * size:
            return {"type": "http.disconnect"}
        pulled += size
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled < chunks * size}

    async def send(message: dict) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": raw,
             "client": ("192.0.2.9", 1234), "server": ("console", 80)}  # fmt: skip
    await app(scope, receive, send)
    return sent[0]["status"], pulled


async def test_a_100_mb_body_without_a_session_is_refused_unread(api) -> None:
    app = api.client._transport.app
    path = "/api/calls/c1/harassment"
    status, pulled = await asgi_post(app, path, {}, chunks=100, size=1 << 20)
    assert (status, pulled) == (401, 0)
    declared = {"content-length": str(100 << 20)}
    h = await api.as_("a1002")
    status, pulled = await asgi_post(app, path, {**declared, **h}, chunks=100, size=1 << 20)
    assert (status, pulled) == (413, 0)  # too large by its own declaration: not read
    status, pulled = await asgi_post(app, path, h, chunks=100, size=1 << 20)
    assert status == 413 and pulled == 1 << 20  # chunked: stopped after the first MB
    refused = [x for x in api.access.audit(10) if x["action"].endswith("/harassment")]
    assert [x["outcome"] for x in refused] == [413, 413, 401]


def test_the_websocket_feed_needs_the_agents_own_session(config, store, tmp_path) -> None:
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    access = fast_store(tmp_path / "a.sqlite3")
    access.add_user("a1002", PASSWORD, "agent", "1002")
    access.add_user("a1009", PASSWORD, "agent", "1009")
    hub = FeedHub()
    app = make_app(config, Services(hub=hub), access=access)
    with TestClient(app) as client:
        for who in (None, "a1009"):
            if who:
                client.post("/api/login", json={"name": who, "password": PASSWORD})
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect("/api/agents/1002/ws") as ws,
            ):
                ws.receive_json()
            assert refused.value.code == 1008
        client.post("/api/login", json={"name": "a1002", "password": PASSWORD})
        with client.websocket_connect("/api/agents/1002/ws") as ws:
            assert ws.receive_json() == {"event": "hello", "agent": "1002"}
            hub.publish("1002", {"event": "call", "call_id": "c9", "draft": None})
            hub.publish("1009", {"event": "call", "call_id": "other"})
            hub.publish("1002", {"event": "hangup", "call_id": "c9"})
            assert ws.receive_json()["call_id"] == "c9"
            assert ws.receive_json() == {"event": "hangup", "call_id": "c9"}
    outcomes = [x["outcome"] for x in access.audit(20) if x["action"].startswith("WS ")]
    assert outcomes == [101, 403, 403]


# ---- drafts kept by the IVR (speech.drafts.keep_call_draft) ---------------------------------
class BrokenStore:
    async def save_draft(self, call_id: str, draft: dict) -> None:
        raise OSError("disk full")


async def test_the_ivr_keeps_the_draft_with_the_callers_number(store) -> None:
    from speech.drafts import keep_call_draft
    from speech.service import ALIVE_KEY

    redis = CallStream(StreamRedis({ALIVE_KEY}, [draft_event(message("c7"), time.time())]))
    record = await keep_call_draft(redis, store, "c7", "13900001111", wait_s=1.0)
    assert record is not None and record["seat"] == "gjj"
    kept = await store.get_draft("c7")
    assert kept["caller"] == "13900001111" and kept["audio"] == "/x/a.wav"
    # a store that fails: logged, nothing raised into the call
    assert await keep_call_draft(redis, BrokenStore(), "c7", wait_s=1.0) is None


async def test_without_a_speech_service_nothing_is_waited_for(store) -> None:
    from speech.drafts import keep_call_draft

    started = asyncio.get_running_loop().time()
    assert (
        await keep_call_draft(CallStream(StreamRedis(set(), [])), store, "c8", wait_s=30.0) is None
    )
    assert asyncio.get_running_loop().time() - started < 1.0
    assert await store.get_draft("c8") is None


async def test_the_agent_page_logs_in_and_sends_no_token_in_a_url(api) -> None:
    page = (await api.client.get("/")).text
    assert 'type="password"' in page and "/api/login" in page
    assert "token=" not in page and "Authorization" not in page  # the HttpOnly cookie only
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page  # callers' words as text
