"""A supervisor opens the wallboard in chromium: today's figures from the call records, then
a caller joining the 公积金 queue — written to a real redis-server by the real
:class:`calls.stream.CallStream` producer — shows in the waiting count within 2 s, and an
agent answering takes it off.  The reports page draws the day from the same records."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve
from wallboard_kit import board_for, redis_server, run_async

from access import AccessStore
from calls.store import SqliteCallStore
from calls.stream import CallStream
from console.app import Services, make_app
from hotline.call import CallEvent
from hotline.config import load_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"


def publish(port: int, *events: CallEvent) -> None:
    """Write ``events`` with the producer the AMI bridge uses."""
    from redis.asyncio import Redis

    async def go() -> None:
        stream = CallStream(Redis(host="127.0.0.1", port=port))
        for e in events:
            assert await stream.publish(e) is not None
        await stream.close()

    run_async(go)


def earlier_today(config_path: Path) -> None:
    """Calls already in the records today (the hotline's day, Asia/Shanghai): 3 answered
    quickly, one abandoned (gjj), 2 zonghe."""
    now = time.time()
    midnight = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0)
    span = min(3000.0, now - midnight.timestamp() - 5)  # all of them today
    store = SqliteCallStore(config_path)

    async def go() -> None:
        n = 0
        for i, (seat, wait, agent) in enumerate(
            [("gjj", 8, "1002"), ("gjj", 15, "1002"), ("gjj", 40, "1009"), ("gjj", 25, ""),
             ("zonghe", 5, "1008"), ("zonghe", 12, "1008")]
        ):  # fmt: skip
            t0 = now - span + i * span / 7
            events = [CallEvent("route", f"past{i}", t0, "ami", data={"seat": seat})]
            if seat == "zonghe":
                matter = {"type": "投诉", "department": "生态环境", "district": "西湖区"}
                events.append(
                    CallEvent("draft", f"past{i}", t0 - 5, "speech", data={"draft": matter})
                )
            if agent:
                events.append(
                    CallEvent("agent", f"past{i}", t0 + wait, "ami", data={"agent": agent})
                )
            events.append(CallEvent("ended", f"past{i}", t0 + wait + 120, "ami"))
            for e in events:
                n += 1
                await store.apply(e, f"{n}-0")
        await store.close()

    run_async(go)


@pytest.fixture
def wallboard(tmp_path: Path):
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    text = text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3"))
    text = text.replace("run/calls.sqlite3", str(tmp_path / "calls.sqlite3"))
    path = tmp_path / "h.yaml"
    path.write_text(text)
    config = load_config(path)
    earlier_today(Path(config.calls.path))
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("sup1", PASSWORD, "supervisor")
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    with redis_server() as port:
        services = Services()
        services.board = board_for(config, port)  # type: ignore[attr-defined]
        with serve(make_app(config, services, access=access)) as url:
            yield url, port
    access.close()


def log_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login button")


def cell(page, seat: str, what: str) -> str:
    return page.inner_text(f"#seat-{seat} .{what}")


def test_a_waiting_caller_shows_on_the_supervisors_wallboard_within_2_s(page, wallboard) -> None:
    url, port = wallboard
    log_in(page, url + "/wallboard", "sup1")
    page.wait_for_function("document.getElementById('state').textContent.includes('已连接')")
    assert page.inner_text("#password") == "" and page.input_value("#password") == ""
    # the day so far, from the call records
    assert (cell(page, "gjj", "offered"), cell(page, "gjj", "answered")) == ("4", "3")
    assert (cell(page, "gjj", "abandoned"), cell(page, "gjj", "sl")) == ("1", "50%")
    assert cell(page, "gjj", "waiting") == "0"

    sent = time.monotonic()
    publish(port, CallEvent("route", "live1", time.time(), "ami", "live1", {"seat": "gjj"}))
    page.wait_for_function(
        "document.querySelector('#seat-gjj .waiting').textContent === '1'", timeout=2000
    )
    shown_after = time.monotonic() - sent
    assert cell(page, "gjj", "offered") == "5"
    screenshot(page, "wallboard")

    publish(port, CallEvent("agent", "live1", time.time(), "ami", "live1", {"agent": "1009"}))
    page.wait_for_function(
        "document.querySelector('#seat-gjj .waiting').textContent === '0'", timeout=2000
    )
    assert "通话中" in page.inner_text("#agent-1009 .state")
    assert page.inner_text("#agent-1009 .seat") == "公积金专席"
    assert cell(page, "gjj", "answered") == "4"
    print(f"waiting caller on screen {shown_after:.2f} s after the event was written")


def test_an_agent_account_is_refused_the_wallboard(page, wallboard) -> None:
    url, _ = wallboard
    log_in(page, url + "/wallboard", "agent1002")
    page.wait_for_function("document.getElementById('state').textContent.includes('不是班长账号')")
    assert page.locator("#seats tbody tr").count() == 0


def test_the_reports_page_draws_the_day_from_the_call_records(page, wallboard) -> None:
    url, _ = wallboard
    log_in(page, url + "/reports", "sup1")
    page.wait_for_function("document.querySelectorAll('#seats tbody tr').length >= 3")
    rows = page.locator("#seats tbody tr").all_inner_texts()
    assert rows[0].split("\t")[:3] == ["合计", "6", "5"]
    assert any(r.startswith("公积金专席\t4\t3\t50%") for r in rows)
    assert any(r.startswith("综合席") and "投诉/生态环境 2" in r and "西湖区 2" in r for r in rows)
    assert page.locator("#chart rect").count() >= 3
    assert "format=csv" in (page.get_attribute("#csv", "href") or "")
    screenshot(page, "reports")
