"""An agent signs in for the shift and goes on a break from the console's agent page, in
chromium: each button press lands as a command in ``acd:commands`` on a real redis-server,
and the page shows the new state when the engine logs it.  No ACD router runs here: the test
applies each command to a real ``RedisEngine`` itself (the router's part)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve
from redis import Redis
from test_agent_page import PASSWORD, log_in

from access import AccessStore
from acd.commands import STREAM, AgentCommand, Op
from acd.engine import RedisEngine
from acd.settings import AcdSettings, AgentProfile
from console.app import Services, make_app
from console.feed import FeedHub
from hotline.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from redis_kit import redis_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    with redis_server(tmp_path) as port:
        yield port


@pytest.fixture
def console_url(tmp_path: Path, redis_port: int) -> Iterator[str]:
    config = load_config(REPO / "hotline.yaml")
    redis = config.redis.model_copy(update={"port": redis_port, "password": None})
    calls = config.calls.model_copy(update={"path": str(tmp_path / "calls.sqlite3")})
    config = config.model_copy(update={"redis": redis, "calls": calls})
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("agent1002", PASSWORD, "agent", "1002")
    with serve(make_app(config, Services(hub=FeedHub()), access=access)) as url:
        yield url
    access.close()


def next_command(client: Redis, seen: int, timeout_s: float = 10.0) -> AgentCommand:
    """The command after the first ``seen`` in the stream (waits for the page to send it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = client.xrange(STREAM)
        if len(entries) > seen:
            return AgentCommand.parse(entries[seen][1])
        time.sleep(0.05)
    raise AssertionError(f"no command #{seen + 1} in {STREAM}")


def state_is(page, text: str) -> None:
    page.wait_for_function(
        f"document.getElementById('acd_state').textContent === {text!r}", timeout=10_000
    )


def test_agent_signs_in_then_goes_on_a_break_and_sees_each_state(
    page, console_url, redis_port
) -> None:
    client = Redis(port=redis_port)
    engine = RedisEngine(client, AcdSettings())
    engine.install()
    log_in(page, console_url, "agent1002", PASSWORD)
    page.wait_for_function("document.getElementById('state').textContent.includes('已连接')")
    state_is(page, "已签出")
    assert page.is_hidden("#acd button[data-op=logout]")

    page.click("#acd button[data-op=login]")
    login = next_command(client, 0)
    assert (login.op, login.agent_id, login.source, login.by) == (
        Op.LOGIN, "1002", "console", "agent1002")  # fmt: skip
    engine.login("1002", AgentProfile(skills={"gjj": 1}), time.time())  # the router's part
    state_is(page, "就绪")
    assert page.is_hidden("#acd button[data-op=login]")

    page.click("#acd button[data-reason=break]")
    pause = next_command(client, 1)
    assert (pause.op, pause.reason, pause.agent_id) == (Op.NOT_READY, "break", "1002")
    engine.not_ready("1002", "break", time.time())  # the router's part
    state_is(page, "未就绪（小休）")
    assert page.inner_text("#acd_since").startswith("自 ")
    screenshot(page, "agent-state")
    client.close()
