"""The supervisors' wallboard, reports and metrics in the console: who may see them, what
they say after a morning of calls, and one subscriber feeding every screen."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from stream_fakes import StreamRedis
from test_console import PASSWORD, fast_store

from calls.store import SqliteCallStore
from console.app import Services, make_app
from hotline.call import CallEvent
from hotline.config import HotlineConfig, load_config
from supervise.board import Board
from supervise.live import LiveModel
from supervise.reports import build_report, not_ready_by_reason, period_bounds
from supervise.sources import agent_events

REPO = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 5, 4, 9, 0, tzinfo=TZ).timestamp()
TOKEN = "metrics-token-0123456789"


@pytest.fixture
def config(tmp_path: Path) -> HotlineConfig:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    text = text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3"))
    text = text.replace("run/calls.sqlite3", str(tmp_path / "calls.sqlite3"))
    text = text.replace("supervise:", f"supervise:\n  metrics_token: {TOKEN}")
    path = tmp_path / "h.yaml"
    path.write_text(text)
    return load_config(path)


def ev(kind: str, call: str, at: float, **data: object) -> CallEvent:
    return CallEvent(kind, call, at, "ami", call, dict(data))


def morning() -> list[CallEvent]:
    """Three gjj callers: one answered in 10 s after talking 5 min, one answered after 50 s,
    one gives up after 30 s; and a zonghe caller about noise in 西湖区."""
    draft = {"draft": {"type": "投诉", "department": "生态环境", "district": "西湖区"}}
    return [
        ev("route", "c1", MORNING, seat="gjj"),
        ev("agent", "c1", MORNING + 10, agent="1002"),
        ev("ended", "c1", MORNING + 310),
        ev("route", "c2", MORNING + 60, seat="gjj"),
        ev("agent", "c2", MORNING + 110, agent="1009"),
        ev("ended", "c2", MORNING + 200),
        ev("route", "c3", MORNING + 100, seat="gjj"),
        ev("ended", "c3", MORNING + 130),
        ev("draft", "c4", MORNING + 300, **draft),
        ev("route", "c4", MORNING + 305, seat="zonghe"),
        ev("agent", "c4", MORNING + 310, agent="1008"),
        ev("ended", "c4", MORNING + 400),
    ]


async def keep_records(config: HotlineConfig, events: list[CallEvent]) -> None:
    store = SqliteCallStore(config.calls.path)
    for i, e in enumerate(events):
        await store.apply(e, f"{i}-0")
    await store.close()


@pytest.fixture
async def api(config, tmp_path):
    access = fast_store(tmp_path / "access.sqlite3")
    access.add_user("sup", PASSWORD, "supervisor")
    access.add_user("a1002", PASSWORD, "agent", "1002")
    await keep_records(config, morning())
    app = make_app(config, Services(), access=access)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        client.access = access  # type: ignore[attr-defined]
        yield client


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"name": name, "password": PASSWORD, "bearer": True})
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_an_agent_asking_for_supervisor_pages_gets_403_and_it_is_audited(api) -> None:
    agent = await login(api, "a1002")
    for path in (
        "/api/supervisor/wallboard",
        "/api/supervisor/wallboard/feed",
        "/api/supervisor/reports",
    ):
        assert (await api.get(path, headers=agent)).status_code == 403
        assert (await api.get(path)).status_code == 401
    refused = [(x["action"], x["outcome"]) for x in api.access.audit(who="a1002")]
    assert ("GET /api/supervisor/wallboard/feed", 403) in refused
    assert ("GET /api/supervisor/reports", 403) in refused


async def test_the_supervisor_reads_the_day_report_from_the_call_records(api) -> None:
    sup = await login(api, "sup")
    r = await api.get("/api/supervisor/reports?period=day&date=2026-05-04", headers=sup)
    assert r.status_code == 200, r.text
    rep = r.json()
    gjj = next(s for s in rep["seats"] if s["seat"] == "gjj")
    assert (gjj["offered"], gjj["answered"], gjj["abandoned"]) == (3, 2, 1)
    assert gjj["service_level"] == round(1 / 3, 3) and gjj["asa_s"] == 30.0
    assert gjj["abandoned_wait_s"] == 30.0 and gjj["aht_s"] == 195.0
    zonghe = next(s for s in rep["seats"] if s["seat"] == "zonghe")
    assert zonghe["top_matters"] == [["投诉/生态环境", 1]]
    assert zonghe["top_districts"] == [["西湖区", 1]]
    agents = {a["agent"]: a for a in rep["agents"]}
    assert agents["1002"]["answered"] == 1 and agents["1002"]["aht_s"] == 300.0
    assert agents["1009"]["service_level"] == 0.0 and agents["1002"]["service_level"] == 1.0
    assert rep["not_ready_known"] is True  # the records store keeps agent_events (none yet)
    assert [b["bucket"] for b in rep["series"]] == ["09"]
    empty = await api.get("/api/supervisor/reports?period=week&date=2026-04-20", headers=sup)
    assert empty.json()["total"]["offered"] == 0


async def test_reports_export_csv_and_refuse_bad_periods(api) -> None:
    sup = await login(api, "sup")
    r = await api.get(
        "/api/supervisor/reports?period=month&date=2026-05-31&format=csv", headers=sup
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:5] == ["范围", "编号", "名称", "呼入", "接通"]
    assert rows[1][:5] == ["合计", "", "", "4", "3"]
    assert rows[2][:5] == ["席位", "gjj", "公积金专席", "3", "2"]
    for bad in ("period=year", "date=2026-13-01", "date=tomorrow", "format=xls"):
        assert (await api.get(f"/api/supervisor/reports?{bad}", headers=sup)).status_code == 422


async def test_metrics_need_loopback_or_the_token(api) -> None:
    assert (await api.get("/metrics")).status_code == 403  # 192.0.2.7, no token
    wrong = {"Authorization": "Bearer not-the-metrics-token"}
    assert (await api.get("/metrics", headers=wrong)).status_code == 403
    r = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert 'hotline_calls_waiting{seat="gjj"} 0.0' in r.text
    assert 'hotline_agents{state="unknown"} 9.0' in r.text


def test_report_periods_and_not_ready_time_by_reason() -> None:
    today = datetime(2026, 5, 6, tzinfo=TZ).date()
    start, end = period_bounds("week", None, TZ, today)
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-05-04", "2026-05-11")
    start, end = period_bounds("month", "2026-12-15", TZ, today)
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-12-01", "2027-01-01")
    t = MORNING
    history = [
        ("1002", "ready", "", t - 50),
        ("1002", "not_ready", "break", t + 100),
        ("1002", "ready", "", t + 700),
        ("1003", "not_ready", "meeting", t - 100),
    ]
    assert not_ready_by_reason(history, t, t + 1000) == {
        "1002": {"break": 600.0},
        "1003": {"meeting": 1000.0},
    }


async def test_agent_events_are_read_from_the_table_the_records_process_keeps(
    tmp_path: Path,
) -> None:
    """Not-ready time comes from the ``agent_events`` rows ``calls.agent_events`` copies from
    the ACD's log (its own schema); a call's events (no agent state) are not state changes."""
    from calls.store import SqliteCallStore

    path = tmp_path / "calls.sqlite3"
    assert agent_events(path, 0, 1) is None
    store = SqliteCallStore(path)
    rows = [  # (entry_id, ms, seq, t, agent, ev, state, reason, call, skill, wait)
        ("10-0", 10000, 0, 10.0, "1002", "state", "not_ready", "training", "", "", None),
        ("12-0", 12000, 0, 12.0, "", "enqueue", "", "", "c1", "gjj", None),
    ]
    assert await store.keep_agent_events("acd:log", rows, "12-0") == 2
    await store.close()
    assert agent_events(path, 0, 100) == [("1002", "not_ready", "training", 10.0)]
    start, end = period_bounds("day", "1970-01-01", ZoneInfo("UTC"), datetime.now().date())
    rep = build_report([], "day", start, end, agent_events=agent_events(path, 0, 100))
    assert rep["agents"][0]["not_ready_s"] == {"training": 86390.0}  # until the day's end
    rep = build_report([], "day", start, end, agent_events=agent_events(path, 0, 100), now=100)
    assert rep["agents"][0]["not_ready_s"] == {"training": 90.0}  # today: until now


async def test_one_subscriber_feeds_every_screen_and_reads_nothing_per_screen(config) -> None:
    """Two events reach 50 screens; the stream is read by one loop whatever their number."""
    now = time.time()
    redis = StreamRedis(
        set(), [], [ev("route", "w1", now, seat="gjj"), ev("route", "w2", now, seat="gjj")]
    )
    reads = 0
    xread = redis.xread

    async def counted(*args, **kwargs):
        nonlocal reads
        reads += 1
        return await xread(*args, **kwargs)

    redis.xread = counted  # type: ignore[method-assign]
    model = LiveModel({"gjj": "公积金专席"}, {}, timezone="Asia/Shanghai")
    board = Board(model, config.supervise, redis=lambda: redis)
    screens = [board.subscribe() for _ in range(50)]
    first = [json.loads((await q.get()).decode().split("data: ", 1)[1]) for q in screens]
    assert {s["seats"][0]["waiting"] for s in first} == {0}
    await board.start()
    try:
        deadline = time.monotonic() + 5
        while model.snapshot()["seats"][0]["waiting"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(config.supervise.push_interval_ms / 1000 * 2)
        latest = [json.loads((await q.get()).decode().split("data: ", 1)[1]) for q in screens]
    finally:
        await board.stop()
    assert {s["seats"][0]["waiting"] for s in latest} == {2}
    assert board.screens == 50 and reads < 20


class AlertRedis(StreamRedis):
    """The stream fake plus ``XADD``: what the board publishes."""

    def __init__(self) -> None:
        super().__init__(set(), [])
        self.added: list[tuple[str, dict]] = []

    async def xadd(self, key: str, fields: dict, **_: object) -> str:
        self.added.append((key, fields))
        return f"{len(self.added)}-0"


async def test_twenty_drafts_from_one_district_raise_the_hotspot_on_the_board(config) -> None:
    """Drafts kept by the ticket store (its own SQLite file) within minutes: the board shows
    the hotspot and publishes it once on ``hotline:supervise:alerts``."""
    from hotline.privacy import CallerKey
    from tickets.sqlite import SqliteTicketStore

    now = datetime.now(TZ)
    store = SqliteTicketStore(config.tickets.path, CallerKey(b"k" * 32), clock=lambda: now)
    for i in range(20):
        body = {"type": "投诉", "seat": "zonghe", "department": "城管", "district": "上城区"}
        await store.save_draft(f"h{i}", body)
    await store.close()
    redis = AlertRedis()
    board = Board.from_config(config, redis=lambda: redis)
    await board.start()
    try:
        deadline = time.monotonic() + 5
        while not board.hotspots and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        first = board.snapshot()
        board.snapshot()  # still active: not published again
        await asyncio.sleep(0.1)
    finally:
        await board.stop()
    shown = {a["key"] for a in first["alerts"] if a["kind"] == "hotspot"}
    assert "department:城管:上城区" in shown and "type:投诉:上城区" in shown
    published = [f["key"] for k, f in redis.added if k == "hotline:supervise:alerts"]
    assert sorted(published) == sorted(shown)


def test_metrics_count_each_events_effect_and_the_dashboard_reads_only_those() -> None:
    import re

    from supervise.metrics import HotlineMetrics

    model = LiveModel({"gjj": "公积金专席"}, {"1002": "张三"}, timezone="Asia/Shanghai")
    board = Board(model, load_config(REPO / "hotline.yaml").supervise, redis=lambda: None)
    metrics = HotlineMetrics()
    metrics.attach(board)
    now = time.time()
    for e in [
        ev("route", "m1", now - 30, seat="gjj"),
        ev("agent", "m1", now - 15, agent="1002"),
        ev("route", "m2", now - 20, seat="gjj"),
        ev("ended", "m2", now),
        ev("emergency", "m3", now, line="119"),
        ev("draft", "m4", now, draft={"latency_s": 0.8}),
        ev("route", "m5", now - 5, seat="gjj"),
        ev("fallback", "m6", now, reason="agi-FAILURE", seat="zonghe"),
    ]:
        metrics.observe(model.apply(e))
    text = metrics.render().decode()
    for line in (
        'hotline_calls_offered_total{seat="gjj"} 3.0',
        'hotline_calls_answered_total{seat="gjj"} 1.0',
        'hotline_calls_abandoned_total{seat="gjj"} 1.0',
        'hotline_queue_wait_seconds_bucket{le="20.0",outcome="answered",seat="gjj"} 1.0',
        'hotline_emergency_transfers_total{line="119"} 1.0',
        "hotline_speech_draft_latency_seconds_count 1.0",
        'hotline_calls_waiting{seat="gjj"} 1.0',
        'hotline_agents{state="on_call"} 1.0',
        'hotline_fail_open_total{reason="agi-FAILURE"} 1.0',
    ):
        assert line in text, line
    exposed = set(re.findall(r"^(hotline_[a-z_]+)", text, re.M))
    dashboard = (REPO / "docker" / "grafana-dashboard.json").read_text(encoding="utf-8")
    used = set(re.findall(r"hotline_[a-z_]+", dashboard)) - {"hotline_console"}
    assert used and used <= exposed, used - exposed


async def test_a_restart_reads_todays_stream_the_records_have_not_caught_up_with(config) -> None:
    """The record keeper lags: calls only in the stream still count, once."""
    now = time.time()
    midnight = datetime.now(TZ).replace(hour=0, minute=0, second=0).timestamp()
    t = max(now - 120, midnight + 1)  # today in the hotline's time zone
    await keep_records(config, [ev("route", "k1", t, seat="gjj")])
    redis = StreamRedis(
        set(), [ev("route", "k1", t, seat="gjj"), ev("route", "k2", (t + now) / 2, seat="gjj")]
    )
    board = Board.from_config(config, redis=lambda: redis)
    await board.start()
    try:
        deadline = time.monotonic() + 5
        while board.model.applied < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await board.stop()
    gjj = next(s for s in board.snapshot()["seats"] if s["id"] == "gjj")
    assert board.seeded == 1 and (gjj["offered"], gjj["waiting"]) == (2, 2)
