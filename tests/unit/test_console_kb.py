"""The knowledge base inside the console: first-start sample import, ``/api/kb`` for the
console's real users and roles, and the top articles on the answering agent's screen-pop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import yaml
from test_console import PASSWORD, fast_store, message

from console.app import Services, make_app
from console.feed import FeedHub
from console.follow import CallFollower
from console.kb import KbSlot
from hotline import safe_yaml
from hotline.call import CallEvent, CallRecord
from hotline.config import ConfigError, HotlineConfig, load_config, parse_config
from kb.boot import open_kb
from speech.drafts import stored_draft
from testphones.sipp import offset_config

REPO = Path(__file__).resolve().parents[2]
GJJ = "市住房公积金管理中心"
USERS = (
    ("a1002", "agent", "1002", None),
    ("sup", "supervisor", None, None),
    ("qa1", "qa", None, None),
    ("admin", "admin", None, None),
    ("gjjdept", "department", None, GJJ),
    ("other", "department", None, "市交通运输局"),
)
ARTICLE = {
    "title": "公积金异地转入",
    "questions": ["外地的公积金怎么转过来"],
    "answer": "示例：在转入地申请异地转移接续。",
    "spoken": "示例：可以在转入地申请转移接续。",
    "path": "公积金 › 转移 › 异地转入",
    "department": GJJ,
}


def kb_config(tmp_path: Path, **kb: object) -> HotlineConfig:
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    data["kb"] = {**data["kb"], "path": str(tmp_path / "kb.sqlite3"),
                  "spoken_dir": str(tmp_path / "kb-sounds"), **kb}  # fmt: skip
    data["tickets"]["path"] = str(tmp_path / "t.sqlite3")
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> KbSlot:
    """The SAMPLE knowledge base as the console opens it on its first start (built once)."""
    kb, _ = open_kb(kb_config(tmp_path_factory.mktemp("kb")))
    return KbSlot(kb)


def test_first_start_publishes_the_sample_once_and_a_restart_keeps_it(tmp_path: Path) -> None:
    config = kb_config(tmp_path)
    kb, threshold = open_kb(config)
    published = len(kb.store.published())
    assert published >= 60 and len(kb.searcher) == published and 0.5 < threshold < 1
    assert kb.store.history("gjj-rent")[0]["actor"] == "sample-import"
    again, _ = open_kb(config)
    assert len(again.store.published()) == published
    assert [e["action"] for e in again.store.history("gjj-rent")] == ["proposed", "published"]


def test_without_the_sample_import_the_knowledge_base_starts_empty(tmp_path: Path) -> None:
    kb, _ = open_kb(kb_config(tmp_path, import_sample=False))
    assert kb.store.published() == [] and kb.search("租房提取公积金").hits == []


def test_a_bad_kb_section_is_refused_with_its_place(tmp_path: Path) -> None:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kb\.self_service"):
        parse_config(text.replace("self_service: []", "self_service: [nosuchseat]"))
    with pytest.raises(ConfigError, match="kb"):
        parse_config(text.replace("import_sample: true", "import_sample: maybe"))
    assert parse_config(text).kb.self_service == ()  # callers' self-service: off by default


def test_a_test_instance_keeps_its_knowledge_base_in_its_run_dir(tmp_path: Path) -> None:
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    moved = offset_config(data, 40000, tmp_path)
    assert moved["kb"]["path"] == str(tmp_path / "kb.sqlite3")
    assert moved["kb"]["spoken_dir"] == str(tmp_path / "kb-sounds")


class Client:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client

    async def as_(self, name: str) -> dict[str, str]:
        r = await self.c.post(
            "/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
        )
        assert r.status_code == 200, r.text
        self.c.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}"}


class Stream:
    """Collects call events like ``calls.stream.CallStream.publish`` (None: Redis down)."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.down = False

    async def publish(self, event: CallEvent) -> str | None:
        if self.down:
            return None
        self.events.append(CallEvent.from_fields(event.to_fields()))  # as the stream holds it
        return f"{len(self.events)}-0"


async def console(
    tmp_path: Path, slot: KbSlot, follower: CallFollower | None = None, calls: Stream | None = None
) -> tuple[httpx.AsyncClient, Client]:
    config = kb_config(tmp_path)
    access = fast_store(tmp_path / "access.sqlite3")
    for name, role, agent, department in USERS:
        access.add_user(name, PASSWORD, role, agent, department)
    sv = Services(kb=slot, follower=follower, calls=calls)
    app = make_app(config, sv, access=access)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    client = httpx.AsyncClient(transport=transport, base_url="http://console")
    return client, Client(client)


async def test_every_console_role_searches_the_sample_and_only_the_right_ones_change_it(
    tmp_path: Path, sample_kb: KbSlot
) -> None:
    client, api = await console(tmp_path, sample_kb)
    async with client:
        assert (await client.get("/api/kb/search", params={"q": "公积金"})).status_code == 401
        for user in ("a1002", "sup", "qa1", "admin", "gjjdept"):
            r = await client.get(
                "/api/kb/search", params={"q": "租房子能取公积金吗"}, headers=await api.as_(user)
            )
            assert r.status_code == 200, (user, r.text)
            assert r.json()["hits"][0]["article"]["id"] == "gjj-rent"
        for reader in ("a1002", "sup", "qa1"):
            r = await client.put(
                "/api/kb/articles/gjj-sample-new", json=ARTICLE, headers=await api.as_(reader)
            )
            assert r.status_code == 403, reader
        other = await api.as_("other")
        r = await client.put("/api/kb/articles/gjj-sample-new", json=ARTICLE, headers=other)
        assert r.status_code == 403
        dept = await api.as_("gjjdept")
        r = await client.put("/api/kb/articles/gjj-sample-new", json=ARTICLE, headers=dept)
        assert r.status_code == 200 and r.json()["status"] == "draft"
        r = await client.post("/api/kb/articles/gjj-sample-new/submit", headers=dept)
        assert r.status_code == 200
        r = await client.post("/api/kb/articles/gjj-sample-new/publish", json={}, headers=dept)
        assert r.status_code == 403
        history = await client.get("/api/kb/articles/gjj-sample-new/history", headers=dept)
        assert [e["actor"] for e in history.json()["events"]] == ["gjjdept", "gjjdept"]


async def test_until_the_index_is_built_the_knowledge_base_answers_503(tmp_path: Path) -> None:
    client, api = await console(tmp_path, KbSlot())
    async with client:
        r = await client.get(
            "/api/kb/search", params={"q": "公积金"}, headers=await api.as_("a1002")
        )
        assert r.status_code == 503 and "being built" in r.json()["detail"]
        assert (await client.get("/api/health")).json()["kb_ready"] is False


async def test_the_index_is_built_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the index is built, the event loop still runs: the build waits for a loop task."""
    import threading

    import kb.boot as kb_boot

    loop_ran = threading.Event()
    seen: list[bool] = []
    real_open = kb_boot.open_kb

    def open_kb_waiting_for_the_loop(config: HotlineConfig) -> object:
        seen.append(loop_ran.wait(timeout=10))  # on the loop's own thread this never comes
        return real_open(config)

    monkeypatch.setattr(kb_boot, "open_kb", open_kb_waiting_for_the_loop)

    async def mark() -> None:
        await asyncio.sleep(0)
        loop_ran.set()

    marker = asyncio.create_task(mark())
    slot = KbSlot()
    await slot.load(kb_config(tmp_path))
    await marker
    assert slot.kb is not None and len(slot.kb.searcher) >= 60
    assert seen == [True]  # the loop kept running while the index was built


async def test_the_answering_agent_sees_the_top_articles_for_the_callers_draft(
    tmp_path: Path, sample_kb: KbSlot
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from hotline.privacy import CallerKey
    from tickets.sqlite import SqliteTicketStore

    morning = datetime(2026, 12, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    store = SqliteTicketStore(tmp_path / "t.sqlite3", CallerKey(b"k" * 32), clock=lambda: morning)
    hub = FeedHub()
    follower = CallFollower(kb_config(tmp_path), hub, store, redis=None, kb=sample_kb)
    screen = hub.subscribe("1002")
    said = message("7.1", transcript="我想问一下租房子能不能取公积金，我的电话13900001111")
    await store.save_draft("7.1", stored_draft(said, caller="13900001111"))
    await follower.on_ami_event(
        {"Event": "AgentConnect", "Linkedid": "7.1", "Channel": "PJSIP/carrier-01",
         "CallerIDNum": "13900001111", "Interface": "PJSIP/agent1002"}
    )  # fmt: skip
    call = screen.get_nowait()
    top = call["kb"]["articles"][0]
    assert top["id"] == "gjj-rent" and top["title"] == "租房提取公积金"
    assert top["answer"] and top["spoken"] and 0 < top["confidence"] <= 1
    assert len(call["kb"]["articles"]) <= 3

    await follower.on_ami_event(
        {"Event": "AgentConnect", "Linkedid": "7.2", "Channel": "PJSIP/carrier-02",
         "CallerIDNum": "13900002222", "Interface": "PJSIP/agent1002"}
    )  # fmt: skip
    assert screen.get_nowait()["kb"] is None  # no draft yet: nothing to search
    await follower.on_draft_message(json.dumps(message("7.2", transcript="失业金怎么申请")))
    late = screen.get_nowait()
    assert late["event"] == "draft" and late["kb"]["articles"]
    await store.close()


async def test_the_agent_marks_answered_from_an_article_and_the_record_keeps_it(
    tmp_path: Path, sample_kb: KbSlot
) -> None:
    follower = CallFollower(kb_config(tmp_path), FeedHub(), store=None, redis=None)
    calls = Stream()
    client, api = await console(tmp_path, sample_kb, follower, calls)
    await follower.on_ami_event(
        {"Event": "AgentConnect", "Linkedid": "1700000000.7", "Channel": "PJSIP/carrier-01",
         "CallerIDNum": "13900001111", "Interface": "PJSIP/agent1002"}
    )  # fmt: skip
    async with client:
        agent = await api.as_("a1002")
        url = "/api/calls/1700000000.7/kb"
        r = await client.post(
            url, json={"action": "answered", "article": "gjj-rent"}, headers=agent
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            url, json={"action": "referred", "department": "市交通运输局"}, headers=agent
        )
        assert r.status_code == 201, r.text
        for bad in (
            {"action": "answered"},  # which article?
            {"action": "answered", "article": "no-such-article"},
            {"action": "answered", "article": "../etc"},
            {"action": "referred"},  # which department?
            {"action": "referred", "department": "市交通\n运输局"},
            {"action": "answered", "article": "gjj-rent", "who": "boss"},
        ):
            r = await client.post(url, json=bad, headers=agent)
            assert r.status_code in (404, 422), bad
        sup = await api.as_("sup")
        r = await client.post(url, json={"action": "answered", "article": "gjj-rent"}, headers=sup)
        assert r.status_code == 403  # only the agent on the call
        other = "/api/calls/1700000000.99/kb"
        r = await client.post(other, json={"action": "answered", "article": "gjj-rent"},
                              headers=agent)  # fmt: skip
        assert r.status_code == 403  # not this agent's call
        calls.down = True
        r = await client.post(
            url, json={"action": "answered", "article": "gjj-rent"}, headers=agent
        )
        assert r.status_code == 503

    record = CallRecord("1700000000.7")
    for event in calls.events:
        assert event.kind == "kb" and event.call_id == "1700000000.7"
        record.apply(event)
    answered, referred = record.kb
    assert answered["action"] == "answered" and answered["article"] == "gjj-rent"
    assert answered["title"] == "租房提取公积金" and answered["version"] >= 1
    assert answered["by"] == "a1002" and answered["department"] == GJJ
    assert referred["action"] == "referred" and referred["department"] == "市交通运输局"


async def test_the_agent_sees_which_article_the_ivr_played_the_caller(tmp_path: Path) -> None:
    hub = FeedHub()
    follower = CallFollower(kb_config(tmp_path), hub, store=None, redis=None)
    screen = hub.subscribe("1002")
    played = {"action": "offered", "article": "gjj-rent", "version": 2, "title": "租房提取公积金"}
    await follower.on_call_event(CallEvent("kb", "1700000000.8", 10.0, "agi", data=played))
    await follower.on_ami_event(
        {"Event": "AgentConnect", "Linkedid": "1700000000.8", "Channel": "PJSIP/carrier-01",
         "CallerIDNum": "13900001111", "Interface": "PJSIP/agent1002"}
    )  # fmt: skip
    shown = screen.get_nowait()["kb_played"]
    assert shown == played


async def test_the_console_expires_articles_past_their_date_by_itself(tmp_path: Path) -> None:
    """第十二条: an article whose valid_until has passed is marked expired by the console's
    own sweep (no admin action), leaves the search and is listed for its owning department."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kb.model import Actor, Role, article_from
    from kb.search import Searcher
    from kb.service import KnowledgeBase
    from kb.sqlite import SqliteKbStore

    now = [datetime(2026, 12, 30, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))]
    store = SqliteKbStore(tmp_path / "kb.sqlite3", clock=lambda: now[0])
    dept = Actor("li", Role.DEPARTMENT, GJJ)
    store.propose(dept, article_from({**ARTICLE, "id": "gjj-move", "valid_until": "2026-12-31"}))
    store.publish(Actor("wang", Role.ADMIN), "gjj-move")
    kb = KnowledgeBase(store, Searcher(store.published()), None)
    slot = KbSlot(kb)
    sweep = asyncio.create_task(slot.expire_every(0.05))
    await asyncio.sleep(0.2)
    assert store.live("gjj-move") is not None  # still valid: the sweeps changed nothing
    now[0] = datetime(2027, 1, 1, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
    for _ in range(100):
        if store.live("gjj-move") is None:
            break
        await asyncio.sleep(0.05)
    sweep.cancel()
    assert store.live("gjj-move") is None
    assert [a.id for a in store.expired_for(dept)] == ["gjj-move"]
    assert store.history("gjj-move")[-1]["actor"] == "kb-expiry"
    assert not kb.search("外地的公积金怎么转过来").hits
