"""Ticket store scenarios (第十四条 progress, 第八条 one ticket per demand, drafts and their
corrections), run against both backends: SQLite in a temp file, and the HTTP store talking to
the reference FastAPI app in-process (over SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from hotline.privacy import CallerKey
from tickets import TicketError, TicketNotFound, TicketStoreUnavailable, open_demands_safely
from tickets.api import make_app
from tickets.http import HttpTicketStore
from tickets.model import Status, TicketStore
from tickets.sqlite import SqliteTicketStore

TZ = ZoneInfo("Asia/Shanghai")
CALLER = "13800001111"
KEY = CallerKey(b"unit-test-secret-0123456789")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 30, tzinfo=TZ)

    def __call__(self) -> datetime:
        return self.now


def demand(call_id: str = "call-1", **extra: object) -> dict[str, object]:
    return {
        "caller": CALLER,
        "call_id": call_id,
        "seat": "gjj",
        "department": "公积金",
        "summary": "咨询公积金提取进度",
        "type": "咨询",
        **extra,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: Clock) -> AsyncIterator[SqliteTicketStore]:
    store = SqliteTicketStore(tmp_path / "tickets.sqlite3", KEY, feedback_days=15, clock=clock)
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", "http"])
async def store(
    request: pytest.FixtureRequest, sqlite_store: SqliteTicketStore
) -> AsyncIterator[TicketStore]:
    if request.param == "sqlite":
        yield sqlite_store
        return
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(sqlite_store)), base_url="http://city-tickets"
    )
    http = HttpTicketStore("http://city-tickets", client=client)
    yield http
    await http.close()


async def test_a_registered_demand_is_heard_back_when_the_caller_rings_again(
    store: TicketStore, clock: Clock
) -> None:
    ticket = await store.create(demand())
    assert ticket.status is Status.ACCEPTED
    assert ticket.status.label == "已受理"
    assert ticket.feedback_due == date(2026, 12, 7)
    assert ticket.caller == CALLER
    clock.now += timedelta(days=3)
    # The caller rings again from the same phone written another way.
    found = await store.open_demands("+86 138-0000-1111")
    assert [t.id for t in found] == [ticket.id]
    assert found[0].summary == "咨询公积金提取进度"
    assert found[0].created_at == datetime(2026, 11, 22, 9, 30, tzinfo=TZ)
    assert await store.open_demands("13900002222") == []


async def test_two_demands_in_one_call_are_two_tickets_newest_first(store: TicketStore) -> None:
    first = await store.create(demand(summary="小区噪音扰民", seat="zonghe", department="生态环境"))
    second = await store.create(demand(summary="公积金提取"))
    assert first.id != second.id
    assert [t.id for t in await store.open_demands(CALLER)] == [second.id, first.id]


async def test_progress_moves_forward_and_done_demands_drop_off_after_30_days(
    store: TicketStore, clock: Clock
) -> None:
    t = await store.create(demand())
    assert (
        await store.update_status(t.id, "办理中", who="公积金中心")
    ).status is Status.IN_PROGRESS
    with pytest.raises(TicketError, match="cannot go back"):
        await store.update_status(t.id, Status.ACCEPTED)
    assert (await store.open_demands(CALLER))[0].status.label == "办理中"
    clock.now += timedelta(days=5)
    await store.update_status(t.id, Status.DONE, who="公积金中心")
    clock.now += timedelta(days=29)
    assert [x.status for x in await store.open_demands(CALLER)] == [Status.DONE]
    clock.now += timedelta(days=2)
    assert await store.open_demands(CALLER) == []


async def test_withheld_caller_has_no_open_demands_and_cannot_own_a_ticket(
    store: TicketStore,
) -> None:
    await store.create(demand())
    for withheld in ("", "anonymous", "Restricted"):
        assert await store.open_demands(withheld) == []
    with pytest.raises(TicketError):
        await store.create(demand(caller="anonymous"))


@pytest.mark.parametrize(
    "bad",
    [
        {"caller": CALLER, "seat": "gjj", "summary": "x"},  # no call id
        {"caller": CALLER, "call_id": "c", "summary": "x"},  # no seat
        {"caller": CALLER, "call_id": "c", "seat": "gjj", "summary": "  "},  # empty summary
        {"call_id": "c", "seat": "gjj", "summary": "x"},  # no caller
    ],
)
async def test_an_incomplete_draft_is_refused_and_nothing_is_stored(
    store: TicketStore, bad: dict[str, object]
) -> None:
    with pytest.raises(TicketError):
        await store.create(bad)
    assert await store.open_demands(CALLER) == []


async def test_unknown_ticket_is_a_clear_error(store: TicketStore) -> None:
    with pytest.raises(TicketNotFound):
        await store.update_status("20260101999999", "done")
    with pytest.raises(TicketError, match="unknown ticket status"):
        await store.update_status("20260101999999", "closed")


async def test_agent_corrects_the_speech_draft_and_the_correction_is_kept(
    store: TicketStore, sqlite_store: SqliteTicketStore
) -> None:
    heard = {"caller": CALLER, "transcript": "西湖区文三路施工噪音", "district": "西湖区",
             "address": "文三路", "type": "投诉", "seat": "zonghe"}  # fmt: skip
    await store.save_draft("call-7", heard)
    assert await store.get_draft("call-7") == heard
    assert await store.get_draft("call-unknown") is None
    fixed = await store.correct_draft("call-7", "address", "文三路100号", who="agent1008")
    assert fixed["address"] == "文三路100号"
    assert fixed["district"] == "西湖区"
    corrections = await sqlite_store.corrections("call-7")
    assert [(c.field, c.old, c.new, c.who) for c in corrections] == [
        ("address", "文三路", "文三路100号", "agent1008")
    ]
    accuracy = await sqlite_store.field_accuracy()
    assert accuracy["address"] == (1, 1)
    assert accuracy["district"] == (1, 0)


async def test_a_damaged_stored_draft_is_a_clear_error_and_its_neighbours_still_read(
    sqlite_store: SqliteTicketStore,
) -> None:
    await sqlite_store.save_draft("call-9", {"summary": "噪音"})
    await sqlite_store.save_draft("call-10", {"summary": "停水"})
    with sqlite3.connect(sqlite_store.path) as db:
        db.execute("UPDATE drafts SET draft = '{broken' WHERE call_id = 'call-9'")
    with pytest.raises(TicketError, match="call-9"):
        await sqlite_store.get_draft("call-9")
    with pytest.raises(TicketError, match="call-9"):
        await sqlite_store.correct_draft("call-9", "summary", "x", who="agent1008")
    assert (await sqlite_store.get_draft("call-10")) == {"summary": "停水"}


async def test_bad_corrections_are_refused(store: TicketStore) -> None:
    await store.save_draft("call-8", {"summary": "噪音"})
    with pytest.raises(TicketNotFound):
        await store.correct_draft("call-none", "summary", "x", who="agent1008")
    with pytest.raises(TicketError):
        await store.correct_draft("call-8", "caller", "13900002222", who="agent1008")
    with pytest.raises(TicketError):
        await store.correct_draft("call-8", "Summary; DROP", "x", who="agent1008")
    with pytest.raises(TicketError):
        await store.correct_draft("call-8", "summary", "x", who=" ")
    assert await store.get_draft("call-8") == {"summary": "噪音"}


async def test_the_database_never_holds_the_caller_number(
    sqlite_store: SqliteTicketStore, tmp_path: Path
) -> None:
    await sqlite_store.create(demand())
    await sqlite_store.save_draft("call-9", {"caller": CALLER, "summary": "噪音"})
    dump = "\n".join(sqlite3.connect(tmp_path / "tickets.sqlite3").iterdump())
    assert "咨询公积金提取进度" in dump
    assert CALLER not in dump and "00001111" not in dump
    assert (tmp_path / "tickets.sqlite3").stat().st_mode & 0o077 == 0


async def test_tickets_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "t.sqlite3"
    s1 = SqliteTicketStore(path, KEY, clock=clock)
    t = await s1.create(demand())
    await s1.close()
    s2 = SqliteTicketStore(path, KEY, clock=clock)
    assert [x.id for x in await s2.open_demands(CALLER)] == [t.id]
    await s2.close()
    s3 = SqliteTicketStore(path, CallerKey(b"another-secret-0123456789"), clock=clock)
    assert await s3.open_demands(CALLER) == []  # another key cannot link the caller
    await s3.close()


async def test_ticket_system_down_means_no_progress_but_the_caller_goes_on() -> None:
    down = HttpTicketStore("http://127.0.0.1:9", timeout_ms=200)
    with pytest.raises(TicketStoreUnavailable):
        await down.open_demands(CALLER)
    assert await open_demands_safely(down, CALLER, timeout_s=0.5) == []
    await down.close()


async def test_unreadable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(TicketStoreUnavailable, match=r"dir\.sqlite3"):
        SqliteTicketStore(tmp_path / "dir.sqlite3", KEY)
