"""A supervisor opens 等待来电 in chromium, sees the calls waiting for the ACD router — queued in a
real redis-server by the real :class:`acd.engine.RedisEngine`, no agent logged in — and
raises the later 公积金 call's priority: the page's press lands as a ``PriorityCommand`` in
``acd:commands``.  No router runs here: the test applies the command to the engine itself
(the router's part) and the page shows the call first at its next refresh."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve
from redis import Redis
from test_wallboard_page import PASSWORD, log_in

from access import AccessStore
from acd.call_commands import PriorityCommand
from acd.commands import STREAM, Source
from acd.engine import RedisEngine
from console.app import Services, make_app
from console.feed import FeedHub
from hotline.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from redis_kit import redis_server

REPO = Path(__file__).resolve().parents[2]
EARLY, LATE, CALLBACK = "1701000001.11", "1701000002.12", "1701000003.13"


@pytest.fixture
def hotline(tmp_path: Path) -> Iterator[tuple[str, RedisEngine, Redis]]:
    """The console on its own redis-server; three callers waiting in the router's engine."""
    config = load_config(REPO / "hotline.yaml")
    with redis_server(tmp_path) as port:
        redis = config.redis.model_copy(update={"port": port, "password": None})
        calls = config.calls.model_copy(update={"path": str(tmp_path / "calls.sqlite3")})
        config = config.model_copy(update={"redis": redis, "calls": calls})
        client = Redis(port=port)
        engine = RedisEngine(client, config.acd_settings())
        engine.install()
        now = time.time()
        engine.enqueue(EARLY, "gjj", 0, now - 40)
        engine.enqueue(LATE, "gjj", 0, now - 8)
        engine.enqueue(CALLBACK, "zonghe", 0, now - 15)
        engine.callback(CALLBACK, now - 10)
        access = AccessStore(
            tmp_path / "access.sqlite3",
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        access.add_user("sup1", PASSWORD, "supervisor")
        access.add_user("agent1002", PASSWORD, "agent", "1002")
        with serve(make_app(config, Services(hub=FeedHub()), access=access)) as url:
            yield url, engine, client
        access.close()
        client.close()


def row(page, call: str):
    return page.locator(f"#calls tr[data-call='{call}']")


def cells(page, call: str) -> list[str]:
    return row(page, call).locator("td").all_inner_texts()[:6]


def sent_commands(client: Redis, timeout_s: float = 10.0) -> list[PriorityCommand]:
    """The priority commands on the stream, once there is one (the page sends it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = client.xrange(STREAM)
        if entries:
            return [PriorityCommand.parse(raw) for _, raw in entries]
        time.sleep(0.05)
    raise AssertionError("no command reached acd:commands")


def test_a_supervisor_raises_the_later_callers_priority_and_it_is_served_first(
    page, hotline
) -> None:
    url, engine, client = hotline
    log_in(page, url + "/supervisor/queue", "sup1")
    row(page, CALLBACK).wait_for()
    order = page.locator("#calls tbody tr").evaluate_all("rs => rs.map(r => r.dataset.call)")
    assert order == [EARLY, LATE, CALLBACK]
    early = cells(page, EARLY)
    assert early[1:3] == ["公积金专席（gjj）", "1"] and early[4:] == ["0", "否"]
    assert 40 <= int(early[3].rstrip("秒")) <= 50, early[3]
    assert cells(page, LATE)[1:3] == ["公积金专席（gjj）", "2"]
    assert cells(page, CALLBACK)[1:3] == ["综合席（zonghe）", "1"]
    assert cells(page, CALLBACK)[5] == "是"
    assert page.inner_text("#summary") == "共 3 个来电等待"
    options = row(page, LATE).locator("select option").all_inner_texts()
    assert options == [str(p) for p in range(10)]  # 0..acd.max_priority (9)

    row(page, LATE).locator("select").select_option("3")
    with page.expect_response(lambda r: r.url.endswith("/api/acd/calls"), timeout=6000):
        pass  # a refresh of the list comes and goes: the choice stays
    assert row(page, LATE).locator("select").input_value() == "3"
    row(page, LATE).locator("button.boost").click()
    page.wait_for_function("document.getElementById('status').textContent.includes('已发送')")
    [cmd] = sent_commands(client)
    assert (cmd.call_id, cmd.priority, cmd.by, cmd.source) == (LATE, 3, "sup1", Source.SUPERVISOR)

    engine.reprioritize(cmd.call_id, cmd.priority, time.time(), by=cmd.by)  # the router
    # the list is read in three pipelined steps, not atomically: a refresh read across the
    # router's change may show the new priority in the old order; the next one shows both
    page.wait_for_function(
        f"document.querySelector('#calls tbody tr').dataset.call === '{LATE}'"
        f" && document.querySelector(\"#calls tr[data-call='{LATE}'] td.priority\")"
        ".textContent === '3'",
        timeout=9000,
    )
    order = page.locator("#calls tbody tr").evaluate_all("rs => rs.map(r => r.dataset.call)")
    assert order == [LATE, EARLY, CALLBACK]
    assert cells(page, LATE)[2] == "1" and cells(page, EARLY)[2] == "2"
    screenshot(page, "supervisor-queue")


def test_an_agent_account_sees_no_waiting_calls(page, hotline) -> None:
    url, _, _ = hotline
    log_in(page, url + "/supervisor/queue", "agent1002")
    page.wait_for_function("document.getElementById('state').textContent.includes('不是班长账号')")
    assert page.locator("#calls tbody tr").count() == 0
