"""The agent's screen in real calls (issue 3): the console started by the Stack follows AMI
and Redis, pushes the draft and its knowledge-base articles to the answering agent's SSE feed,
records the agent's 直接答复, and keeps corrections.  Each
agent logs in as themselves (issue 8): users are made the way ``hotline users add`` makes them.

Same kind of instance as test_speech_calls.py (speech after the key, Whisper, sipp phones).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from test_speech_calls import AUDIO, SpeechHotline, start_speech_hotline

pytestmark = [pytest.mark.integration, pytest.mark.speech]


PASSWORD = "itest-console-password"


@pytest.fixture(scope="module")
def screen_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechHotline]:
    from access import AccessStore

    h, stack = start_speech_hotline(tmp_path_factory.mktemp("screen-itest"))
    users = AccessStore.from_config(h.config)  # what `hotline users add` does
    for a in h.config.agents:
        users.add_user(f"agent{a.id}", PASSWORD, "agent", a.id)
    users.add_user("sup1", PASSWORD, "supervisor")
    users.add_user("admin1", PASSWORD, "admin")
    users.close()
    try:
        yield h
    finally:
        h.phones.stop()
        stack.down()  # type: ignore[attr-defined]


def login(base_url: str, name: str) -> dict[str, str]:
    """Log in as ``name``; the bearer header of the new session."""
    r = httpx.post(
        f"{base_url}/api/login", json={"name": name, "password": PASSWORD, "bearer": True}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def read_feed(
    client: httpx.AsyncClient, agent: str, auth: dict, out: list[dict], ready: asyncio.Event
) -> None:
    """Collect one agent's SSE events (``{"event": kind, ...}``) until cancelled."""
    async with client.stream("GET", f"/api/agents/{agent}/feed", headers=auth) as r:
        assert r.status_code == 200, await r.aread()
        kind = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append({**json.loads(line[6:]), "event": kind})
                if kind == "hello":
                    ready.set()


def articles_on(feed: list[dict]) -> list[tuple[str, list[dict]]]:
    """The knowledge-base articles that came with the call or draft events of a feed, with
    the (masked) transcript they were found for."""
    return [(e["draft"]["transcript"], e["kb"]["articles"])
            for e in feed if (e.get("kb") or {}).get("articles")]  # fmt: skip


def test_the_answering_agent_sees_the_draft_and_a_correction_is_kept(screen_hotline) -> None:
    h = screen_hotline
    caller = "13900008801"
    agents = sorted(a.id for a in h.config.agents if "gjj" in a.seats)
    auth = {a: login(h.console_url, f"agent{a}") for a in agents}
    feeds: dict[str, list[dict]] = {a: [] for a in agents}
    live: dict[str, object] = {}

    async def while_up(client: httpx.AsyncClient) -> None:
        """Once an agent has the call: the callback numbers, for that agent only; then the
        draft's top knowledge-base article, which the agent marks as the answer (直接答复)."""
        while not any(e["event"] == "call" for f in feeds.values() for e in f):
            await asyncio.sleep(0.2)
        who = next(a for a, f in feeds.items() if any(e["event"] == "call" for e in f))
        call_id = next(e["call_id"] for e in feeds[who] if e["event"] == "call")
        url = f"/api/calls/{call_id}/callback"
        live["own"] = await client.get(url, headers=auth[who])
        other = live["other_agent"] = next(a for a in agents if a != who)
        live["other"] = await client.get(url, headers=auth[other])
        live["not_own_feed"] = await client.get(f"/api/agents/{who}/current", headers=auth[other])
        # the knowledge base's top article for the draft: the agent answers from it (直接答复)
        while not (shown := articles_on(feeds[who])):
            await asyncio.sleep(0.2)
        transcript, articles = shown[-1]
        live["kb_top"] = articles[0]
        live["kb_shown"] = [a["id"] for a in articles]
        search = await client.get("/api/kb/search", params={"q": transcript, "limit": 3},
                                  headers=auth[who])  # fmt: skip
        live["kb_searched"] = [h["article"]["id"] for h in search.json()["hits"]]
        live["kb_mark"] = await client.post(
            f"/api/calls/{call_id}/kb",
            json={"action": "answered", "article": articles[0]["id"]},
            headers=auth[who],
        )

    async def scenario() -> dict:
        async with httpx.AsyncClient(base_url=h.console_url, timeout=None) as client:
            ready = {a: asyncio.Event() for a in agents}
            readers = [
                asyncio.create_task(read_feed(client, a, auth[a], feeds[a], ready[a]))
                for a in agents
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready.values())), 10)
            checks = asyncio.create_task(while_up(client))
            call = await h.place(h.spec(AUDIO / "dev02.wav", "2", caller, hold_s=25))
            await asyncio.sleep(1.0)  # the hang-up event
            checks.cancel()
            for t in readers:
                t.cancel()
            await asyncio.gather(checks, *readers, return_exceptions=True)
            return call

    call = asyncio.run(scenario())

    assert call["sipp"]["ok"] and call["agent"] is not None, call
    call_id = call["linkedid"]
    answered = call["agent"]["endpoint"].removeprefix("agent")
    screens = {a: [e for e in feeds[a] if e.get("call_id") == call_id] for a in agents}
    assert all(not screens[a] for a in agents if a != answered), screens  # only the answerer
    kinds = [e["event"] for e in screens[answered]]
    assert kinds[0] == "call" and kinds[-1] == "hangup", kinds
    shown = screens[answered][0]
    assert shown["seat"] == call["seat"] and shown["ivr_path"] == call["ivr_path"]
    assert shown["caller_flag"] == "normal"
    assert shown["caller"] == "139****8801"
    assert caller not in json.dumps(feeds, ensure_ascii=False)  # masked everywhere
    drafts = [e["draft"] for e in screens[answered] if e.get("draft")]
    assert drafts, f"no draft reached the agent's screen: {screens[answered]}"
    on_screen = drafts[-1]
    assert on_screen["call_id"] == call_id
    # the screen shows exactly the draft the IVR kept for the call, and it is dev02's reading
    # (expected.tsv: 咨询, 公积金专席; the words themselves vary with the recogniser, e.g.
    # "工基金" for 公积金, which the extractor matches by pinyin)
    kept_draft = asyncio.run(h.stored_draft(call_id))
    assert kept_draft is not None, "the IVR kept no draft for the call"
    keys = ("transcript", "type", "seat", "district", "emergency", "out_of_scope")
    assert {k: on_screen.get(k) for k in keys} == {k: kept_draft.get(k) for k in keys}
    # what was recognised is the sixteen-caller test's to score (floors over held-back clips):
    # here one clip under CI load read once as 综合 (RTP jitter changes the words), so this
    # scenario asserts the screen carries a well-formed reading, not which one
    assert on_screen["type"] in {"咨询", "投诉", "举报", "建议", "求助", "表扬", None}, on_screen
    assert on_screen["seat"] in {s.id for s in h.config.seats}, on_screen
    assert on_screen["transcript"], "the draft on screen has no transcript"
    # while the call was up: the full number for the agent on it, for nobody else
    assert live["own"].status_code == 200, live  # type: ignore[union-attr]
    assert live["own"].json()["caller"] == caller  # type: ignore[union-attr]
    assert live["other"].status_code == 403  # type: ignore[union-attr]
    assert live["not_own_feed"].status_code == 403  # type: ignore[union-attr]
    # with the draft, the screen showed the knowledge base's top articles for what was
    # recognised (the words vary from run to run: the same as the agent's own search), and
    # the agent's 直接答复 went into the call record
    top = live["kb_top"]
    assert live["kb_shown"] == live["kb_searched"], live  # type: ignore[index]
    assert top["title"] and top["spoken"] and 0 < top["confidence"] <= 1, top  # type: ignore[index]
    assert live["kb_mark"].status_code == 201, live["kb_mark"].text  # type: ignore[union-attr]
    from test_call_records import record_of

    rec = record_of(h, call)
    assert [(k["action"], k["article"], k["by"]) for k in rec.kb] == [
        ("answered", top["id"], f"agent{answered}")  # type: ignore[index]
    ], rec.kb

    # the agent corrects two fields; the correction is kept in the ticket store
    agent_auth = auth[answered]
    with httpx.Client(base_url=h.console_url, timeout=10) as http:
        fix = {"fields": {"district": "西湖区", "type": "投诉"}}
        refused = http.patch(f"/api/drafts/{call_id}", json=fix)
        bad = http.patch(
            f"/api/drafts/{call_id}", json={"fields": {"seat": "nowhere"}}, headers=agent_auth
        )
        ok = http.patch(f"/api/drafts/{call_id}", json=fix, headers=agent_auth)
        fetched = http.get(f"/api/drafts/{call_id}", headers=agent_auth)
        after = http.get(f"/api/calls/{call_id}/callback", headers=agent_auth)
        stats_as_agent = http.get("/api/stats/demand", headers=agent_auth)
        stats = http.get("/api/stats/demand", headers=login(h.console_url, "sup1"))
        audit = http.get(
            "/api/admin/audit", params={"count": 1000}, headers=login(h.console_url, "admin1")
        )

    assert refused.status_code == 401
    assert bad.status_code == 422 and "seat" in bad.json()["detail"]
    assert ok.status_code == 200, ok.text
    assert ok.json()["draft"]["district"] == "西湖区"
    assert fetched.json()["draft"]["type"] == "投诉"
    assert fetched.json()["draft"]["caller"] == "139****8801"
    assert after.status_code == 403  # the call is over: no full number any more
    assert stats_as_agent.status_code == 403
    assert stats.json()["by_district"].get("西湖区", 0) >= 1
    callback = "GET /api/calls/{call_id}/callback"
    reads = sorted(
        (x["who"], x["outcome"])
        for x in audit.json()["records"]
        if x["action"] == callback and x["target"] == f"call_id={call_id}"
    )
    other = live["other_agent"]
    assert reads == sorted([(f"agent{answered}", 200), (f"agent{answered}", 403),
                            (f"agent{other}", 403)]), reads  # fmt: skip
    assert caller not in audit.text

    from tickets.sqlite import SqliteTicketStore

    async def kept() -> list:
        store = SqliteTicketStore.from_config(h.config)
        try:
            return await store.corrections(call_id)
        finally:
            await store.close()

    corrections = asyncio.run(kept())
    assert sorted(x.field for x in corrections) == ["district", "type"]  # not the refused one
    assert {x.who for x in corrections} == {f"agent{answered}"}  # the session's user
    assert {x.new for x in corrections} == {"西湖区", "投诉"}


def test_a_supervisor_flags_and_lifts_a_caller_through_the_console(screen_hotline) -> None:
    h = screen_hotline
    sup = login(h.console_url, "sup1")
    agent = login(h.console_url, f"agent{h.config.agents[0].id}")
    caller = "13900008802"
    with httpx.Client(base_url=h.console_url, timeout=10) as http:
        as_agent = http.post(
            "/api/supervisor/callers/lift",
            json={"caller": caller, "why": "y"},
            headers=agent,
        )
        bad = http.post(
            "/api/supervisor/callers/harassment",
            json={"caller": "not-a-number", "note": "辱骂", "request_id": "itest-flag-0"},
            headers=sup,
        )
        flag = {"caller": caller, "note": "辱骂坐席", "request_id": "itest-flag-1"}
        flagged = http.post("/api/supervisor/callers/harassment", json=flag, headers=sup)
        retried = http.post("/api/supervisor/callers/harassment", json=flag, headers=sup)
        lifted = http.post(
            "/api/supervisor/callers/lift",
            json={"caller": caller, "why": "核实为误标"},
            headers=sup,
        )
        audit = http.get("/api/supervisor/audit", params={"caller": caller}, headers=sup)
        referrals = http.get("/api/supervisor/referrals", headers=sup)

    assert as_agent.status_code == 403
    assert bad.status_code == 422
    assert flagged.status_code == 201 and flagged.json()["flags"] == 1
    assert retried.status_code == 200 and retried.json()["replayed"] is True  # no second flag
    assert lifted.status_code == 200
    events = [r["event"] for r in audit.json()["records"]]
    assert events.count("harassment") == 1 and "lift" in events, events
    assert {r["by"] for r in audit.json()["records"]} == {"sup1"}  # from the session
    assert {r["caller_masked"] for r in audit.json()["records"]} == {"139****8802"}
    assert caller not in audit.text + flagged.text + lifted.text
    console_log = h.stack._logfile("console").read_text(encoding="utf-8")  # type: ignore[attr-defined]
    assert "?caller=" not in console_log and caller not in console_log  # 第二十条
    assert referrals.status_code == 200 and isinstance(referrals.json()["referrals"], list)
