"""A supervisor opens the 班长席 page in chromium, sees the agent on a call and presses 监听,
then 耳语, then 结束: the page calls the console API, which turns each press into the AMI
action for it.  Only AMI is faked here (it records the actions); the console, its guard,
the session cookie and the page are the real ones.  The real-call version with sipp phones is
tests/integration/test_supervisor_spy.py."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve

from access import AccessStore
from console.app import Services, make_app
from console.feed import FeedHub
from console.follow import CallFollower
from console.spy import SpyDesk
from hotline.config import load_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
CALL = "1700000100.1"


class RecordingAmi:
    """The call's channels; every action succeeds and is kept in ``actions``."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, dict]] = []
        self.channels = [
            {"Channel": "PJSIP/carrier-00000001", "Uniqueid": CALL, "Linkedid": CALL},
            {"Channel": "PJSIP/agent1002-00000002", "Uniqueid": "1700000100.2", "Linkedid": CALL},
        ]

    async def action_list(self, name: str, **_: object) -> list[dict[str, str]]:
        return list(self.channels)

    async def action(self, name: str, **fields: object) -> dict[str, str]:
        self.actions.append((name, fields))
        if name == "Originate":
            self.channels.append(
                {
                    "Channel": "PJSIP/supervisor9001-00000003",
                    "Uniqueid": str(fields["ChannelId"]),
                    "Linkedid": "s",
                }
            )
        return {"Response": "Success"}

    async def close(self) -> None:
        pass


@pytest.fixture
def desk(tmp_path: Path):
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    path.write_text(text.replace("run/tickets.sqlite3", str(tmp_path / "t.sqlite3")))
    config = load_config(path)
    access = AccessStore(
        tmp_path / "access.sqlite3",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    access.add_user("sup1", PASSWORD, "supervisor")
    ami = RecordingAmi()

    async def connect() -> RecordingAmi:
        return ami

    follower = CallFollower(config, FeedHub(), None, redis=None)
    follower.ami_connected = True
    routed = {"Event": "UserEvent", "UserEvent": "HotlineRoute", "Linkedid": CALL,
              "Seat": "gjj", "Queue": "seat_gjj", "Path": "main>2"}  # fmt: skip
    answered = {"Event": "AgentConnect", "Linkedid": CALL, "Channel": "PJSIP/carrier-00000001",
                "CallerIDNum": "13900001111", "Interface": "PJSIP/agent1002"}  # fmt: skip
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        for event in (routed, answered):
            pool.submit(asyncio.run, follower.on_ami_event(event)).result()
    services = Services(follower=follower, hub=follower.hub)
    services.spy = SpyDesk(config, connect=connect)  # type: ignore[attr-defined]
    with serve(make_app(config, services, access=access)) as url:
        yield url, ami
    access.close()


def test_a_supervisor_presses_listen_then_whisper_then_stop_on_an_agent_row(page, desk) -> None:
    url, ami = desk
    page.goto(url + "/supervisor/spy")
    page.fill("#name", "sup1")
    page.fill("#password", PASSWORD)
    page.click("#login button")
    row = page.locator("tr[data-agent='1002']")
    row.wait_for()
    assert CALL in row.inner_text()

    row.locator("button[data-mode='listen']").click()
    page.wait_for_function("document.getElementById('status').textContent.includes('监听')")
    assert [a for a, _ in ami.actions] == ["Originate"]
    originate = ami.actions[0][1]
    assert (originate["Channel"], originate["Exten"]) == ("PJSIP/supervisor9001", "listen")
    assert originate["Variable"] == "HOTLINE_SPY_TARGET=1700000100.2"
    page.locator("tr[data-agent='1002'] td", has_text="9001 监听").wait_for()
    screenshot(page, "supervisor-spy")

    page.locator("tr[data-agent='1002'] button[data-mode='whisper']").click()
    page.wait_for_function("document.getElementById('status').textContent.includes('耳语')")
    assert ami.actions[-1][0] == "PlayDTMF" and ami.actions[-1][1]["Digit"] == "5"

    page.locator("tr[data-agent='1002'] button[data-mode='stop']").click()
    page.wait_for_function("document.getElementById('status').textContent.includes('已结束')")
    assert ami.actions[-1][0] == "Hangup"
    assert ami.actions[-1][1]["Channel"] == originate["ChannelId"]
