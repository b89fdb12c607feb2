"""An admin opens the incident-notice page (第十三条) in chromium, logs in and publishes a
water-cut notice for 西湖区 callers choosing the 公积金 seat; it is listed as 生效中."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from argon2 import PasswordHasher
from browser_kit import screenshot, serve

from access import AccessStore
from console.app import Services, make_app
from hotline import safe_yaml
from hotline.config import load_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def console(tmp_path: Path):
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    data["tickets"]["path"] = str(tmp_path / "t.sqlite3")
    data["notices"] = {"path": str(tmp_path / "n.sqlite3"),
                       "sounds_dir": str(tmp_path / "custom-sounds")}  # fmt: skip
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    config = load_config(path)
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("admin1", PASSWORD, "admin")
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    app = make_app(config, Services(), access=access)
    app.state.notices.resynthesise = lambda: None  # no TTS here (tests/integration plays it)
    with serve(app) as url:
        yield url, app.state.notices.store
    access.close()


def log_in(page, url: str, name: str) -> None:
    page.goto(url + "/admin/notices")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login button")


def admin_fills(page, url: str, title: str, text: str, start_h: float, end_h: float) -> None:
    """The admin logs in and types a notice from ``start_h`` to ``end_h`` hours from now."""
    log_in(page, url, "admin1")
    page.wait_for_function("document.getElementById('state').textContent === '已登录'")
    now = datetime.now(BEIJING)
    page.fill("#title", title)
    page.fill("#text", text)
    page.fill("#start", (now + timedelta(hours=start_h)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#end", (now + timedelta(hours=end_h)).strftime("%Y-%m-%dT%H:%M"))


def test_admin_publishes_a_water_cut_notice_for_gongjijin_callers(page, console) -> None:
    url, store = console
    text = "因管道抢修，西湖区文三路一带今天停水至晚上八点，请您谅解。"
    admin_fills(page, url, "文三路停水", text, -1 / 60, 4)
    page.check('input[name="scope"][value="seats"]')
    page.check('input[name="seat"][value="gjj"]')
    page.select_option("#district", "西湖区")
    page.click("#save")
    page.wait_for_function("document.getElementById('error').textContent === '已发布'")
    page.wait_for_selector("#list tr.active")
    row = page.inner_text("#list tr.active")
    assert "文三路停水" in row and "生效中" in row and "公积金专席" in row and "西湖区" in row
    [stored] = store.all()
    assert stored.seats == ("gjj",) and stored.district == "西湖区"
    screenshot(page, "notices")


def test_end_before_start_is_refused_on_the_page(page, console) -> None:
    url, store = console
    admin_fills(page, url, "测试", "测试内容", 2, 1)
    page.click("#save")
    page.wait_for_function("document.getElementById('error').textContent.startsWith('未发布')")
    assert "end must be after start" in page.inner_text("#error")
    assert store.all() == []


def test_an_agent_gets_no_notice_page_data(page, console) -> None:
    url, _ = console
    log_in(page, url, "agent1002")
    page.wait_for_function("document.getElementById('state').textContent.includes('无权限')")
    assert page.inner_text("#list") == ""
