"""Admins change the hotline config in the console's admin page (chromium): a menu key in the
form, the diff, apply with a comment; a broken config shows its line and changes nothing; a
second admin's stale apply is refused; an agent gets 403 (audited)."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve

from access import AccessStore
from admin.lifecycle import Lifecycle
from admin.versions import VersionStore
from console.app import Services, make_app
from hotline.config import load_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
KEY2_OLD, KEY2_NEW = '"2": seat:gjj', '"2": seat:jiaotong'


class Console:
    def __init__(self, url: str, path: Path, versions: VersionStore, access: AccessStore):
        self.url, self.path, self.versions, self.access = url, path, versions, access


@pytest.fixture
def console(tmp_path: Path):
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "hotline.yaml"
    path.write_text(text.replace("run/", f"{tmp_path}/run/"), encoding="utf-8")
    config = load_config(path)
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("admin1", PASSWORD, "admin")
    access.add_user("admin2", PASSWORD, "admin")
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    versions = VersionStore(config.admin.versions_db)
    life = Lifecycle(path, versions, "demo", target=None)
    with serve(make_app(config, Services(), access=access, admin=life)) as url:
        yield Console(url, path, versions, access)
    access.close()


def log_in(page, console: Console, name: str) -> None:
    page.goto(console.url + "/admin")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login button")


def set_yaml(page, text: str) -> None:
    """Type into the editor (the whole text at once, as a paste)."""
    page.eval_on_selector(
        "#yaml", "(ta, text) => { ta.value = text; ta.dispatchEvent(new Event('input')); }", text
    )


def admin_page(page, console: Console, name: str = "admin1") -> None:
    log_in(page, console, name)
    page.wait_for_function("document.getElementById('base').textContent === '1'")
    page.wait_for_selector("#opt_2")


def test_admin_changes_key_2_in_the_form_sees_the_diff_and_applies(page, console) -> None:
    admin_page(page, console)
    assert page.input_value("#opt_2") == "seat:gjj"
    page.select_option("#opt_2", "seat:jiaotong")
    page.wait_for_function(
        "document.getElementById('diff').textContent.includes('+      \"2\": seat:jiaotong')"
    )
    assert KEY2_NEW in page.input_value("#yaml")
    assert '-      "2": seat:gjj' in page.inner_text("#diff")
    assert "hidden.ami.secret" in page.input_value("#yaml")  # the secret never reaches the page
    assert "change-me-12345-ami" not in page.content()
    screenshot(page, "admin-diff")
    page.fill("#comment", "2 键改到交通专席")
    page.click("#apply")
    page.wait_for_function("document.getElementById('result').textContent.includes('运行版本 2')")
    on_disk = console.path.read_text(encoding="utf-8")
    assert KEY2_NEW in on_disk and "change-me-12345-ami" in on_disk  # the secret kept
    running = console.versions.running()
    assert (running.id, running.who, running.comment) == (2, "admin1", "2 键改到交通专席")
    assert page.inner_text("#base") == "2"
    assert "2（运行中）" in page.inner_text("#history")
    screenshot(page, "admin-editor")


def test_broken_config_shows_its_line_and_nothing_changes(page, console) -> None:
    admin_page(page, console)
    before = console.path.read_bytes()
    text = page.input_value("#yaml")
    line = text.splitlines().index('      "2": seat:gjj') + 1
    set_yaml(page, text.replace(KEY2_OLD, '"2": seat:nosuch'))
    page.click("#validate")
    page.wait_for_selector("#problems li")
    problem = page.inner_text("#problems li")
    assert f"第 {line} 行 menus.main.options.2" in problem and "nosuch" in problem
    assert page.locator("#hl .err").count() == 1
    assert page.inner_text("#hl .err").startswith(str(line))
    page.fill("#comment", "坏的配置")
    page.click("#apply")
    page.wait_for_function("document.getElementById('result').textContent.includes('校验未通过')")
    # a YAML syntax error: its line too
    set_yaml(page, text.replace("  main:\n", "  main\n", 1))
    page.click("#validate")
    page.wait_for_function("document.getElementById('problems').textContent.includes('<yaml>')")
    assert console.path.read_bytes() == before
    assert [v.id for v in console.versions.history()] == [1]


def test_second_admins_stale_apply_is_refused(browser, page, console) -> None:
    other = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    try:
        second = other.new_page()
        admin_page(page, console, "admin1")
        admin_page(second, console, "admin2")
        page.select_option("#opt_2", "seat:jiaotong")
        page.wait_for_function("document.getElementById('result').textContent === '校验通过'")
        page.fill("#comment", "admin1 的修改")
        page.click("#apply")
        page.wait_for_function(
            "document.getElementById('result').textContent.includes('运行版本 2')"
        )
        second.select_option("#opt_3", "seat:gjj")
        second.wait_for_function("document.getElementById('result').textContent === '校验通过'")
        second.fill("#comment", "admin2 基于旧版本的修改")
        second.click("#apply")
        second.wait_for_function(
            "document.getElementById('result').textContent.includes('其他管理员已应用新版本')"
        )
        on_disk = console.path.read_text(encoding="utf-8")
        assert KEY2_NEW in on_disk and '"3": seat:jiaotong' in on_disk
        assert [v.who for v in console.versions.history()] == ["admin1", "system"]
    finally:
        other.close()


def test_an_agent_gets_403_on_the_admin_api_and_it_is_audited(page, console) -> None:
    log_in(page, console, "agent1002")
    page.wait_for_function("document.getElementById('state').textContent.includes('无权限')")
    status = page.evaluate(
        """async () => (await fetch('/api/admin/config/apply', {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({text: 'a: 1', base: 1, comment: 'x'})})).status"""
    )
    assert status == 403
    refused = {r["action"] for r in console.access.audit(100, "agent1002") if r["outcome"] == 403}
    assert {"GET /api/admin/config", "POST /api/admin/config/apply"} <= refused
    assert console.versions.history() == []  # nothing was even read into a version
