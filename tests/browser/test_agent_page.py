"""An agent opens the console's agent page in chromium and logs in (the page's own form,
cookie session and SSE feed), as the 12345 seats do at the start of a shift."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve

from access import AccessStore
from console.app import Services, make_app
from console.feed import FeedHub
from console.follow import CallFollower
from hotline.config import load_config
from hotline.privacy import CallerKey
from tickets.sqlite import SqliteTicketStore

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"


@pytest.fixture
def console_url(tmp_path: Path):
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    path.write_text(text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3")))
    config = load_config(path)
    store = SqliteTicketStore(
        config.tickets.path,
        CallerKey(b"k" * 32),
        clock=lambda: datetime(2026, 5, 4, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
    )
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    access.add_user("sup1", PASSWORD, "supervisor")
    follower = CallFollower(config, FeedHub(), store, redis=None)
    services = Services(store=store, throttle=None, follower=follower, hub=follower.hub)
    with serve(make_app(config, services, access=access)) as url:
        yield url
    access.close()


def log_in(page, url: str, name: str, password: str) -> None:
    page.goto(url + "/")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#login button")


def test_agent_logs_in_and_the_page_connects_to_the_feed(page, console_url) -> None:
    log_in(page, console_url, "agent1002", PASSWORD)
    page.wait_for_function("document.getElementById('state').textContent.includes('已连接')")
    assert page.inner_text("#state") == "agent1002 已连接"
    assert page.input_value("#password") == ""  # not left in the form
    screenshot(page, "agent-page")


def test_a_wrong_password_is_refused_and_nothing_connects(page, console_url) -> None:
    log_in(page, console_url, "agent1002", "not-the-password")
    page.wait_for_function("document.getElementById('state').textContent !== '未登录'")
    assert "已连接" not in page.inner_text("#state")
    assert all(c["name"] != "hotline_session" for c in page.context.cookies())


def test_a_supervisor_account_is_told_it_is_not_a_seat(page, console_url) -> None:
    log_in(page, console_url, "sup1", PASSWORD)
    page.wait_for_function("document.getElementById('state').textContent.includes('不是坐席账号')")
