"""Callers waiting for the ACD router hear their place and the estimated wait: the
``acd_announce`` FastAGI handler (a fake channel over a real redis-server holding the real
engine's queue), the prompts it picks, and the waiting room's dialplan that calls it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis as AsyncRedis
from redis_kit import free_port

from acd.agent_log import quick_client
from acd.announce import Place, waiting_place
from acd.settings import AgentProfile
from agi_scripts.handlers import acd_announce
from agi_scripts.protocol import parse_env
from agi_scripts.server import AgiApp
from asterisk_conf.render import render_text
from hotline import dialplan_vars as V
from hotline.config import HotlineConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
GJJ = AgentProfile(skills={"gjj": 1})


class WaitingCaller:
    """The waiting caller's channel as the handler sees it; ``presses`` the key during the
    prompt at that index."""

    def __init__(self, uniqueid: str, *args: str, presses: tuple[int, str] | None = None) -> None:
        lines = [
            "agi_network_script: acd_announce",
            f"agi_uniqueid: {uniqueid}",
            "agi_callerid: 1700000000.9",
            "agi_channel: PJSIP/carrier-00000007",
            *(f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)),
        ]
        self.env = parse_env("\n".join(lines) + "\n\n")
        self.call_id = "unknown"
        self.played: list[str] = []
        self.escapes: list[str] = []
        self.variables: dict[str, str] = {}
        self.presses = presses

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        self.played.append(prompt.removeprefix("hotline/"))
        self.escapes.append(escape_digits)
        if self.presses and self.presses[0] == len(self.played) - 1:
            return self.presses[1]
        return None

    async def set_variable(self, name: str, value: object) -> None:
        self.variables[name] = str(value)


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(EXAMPLE)


@pytest.fixture
async def app(config, acd_redis_port) -> AsyncIterator[AgiApp]:
    client = AsyncRedis(port=acd_redis_port)
    yield AgiApp(config=config, acd_redis=client)
    await client.aclose()


def queue_three_gjj_callers(engine) -> None:
    """Agent 1002 (公积金 level 1) logged in but not ready; three 公积金 callers waiting."""
    now = time.time()
    engine.login("1002", GJJ, now, ready=False)
    for i in range(3):
        assert engine.enqueue(f"1700000000.{i + 1}", "gjj", 0, now + i) == []


# ---- the handler ---------------------------------------------------------------------------
async def test_third_caller_hears_two_ahead_and_about_fifteen_minutes(app, engine) -> None:
    queue_three_gjj_callers(engine)
    caller = WaitingCaller("1700000000.3", "9")
    await acd_announce.handle(caller, app)  # type: ignore[arg-type]
    # 3 places × 300 s default handle ÷ 1 agent logged in = 15 min
    assert caller.played == ["acd-ahead", "num-liang", "acd-callers",
                             "acd-wait-about", "num-10", "digit-5", "acd-minutes"]  # fmt: skip
    assert set(caller.escapes) == {"9"}  # the emergency key interrupts every prompt
    assert caller.variables == {}
    assert caller.call_id == "1700000000.3"


async def test_the_channels_uniqueid_names_the_call_not_the_caller_id(app, engine) -> None:
    queue_three_gjj_callers(engine)
    caller = WaitingCaller("1700000000.1", "9")  # its caller ID field says …0.9; first in line
    await acd_announce.handle(caller, app)  # type: ignore[arg-type]
    assert caller.played == ["acd-next", "acd-wait-about", "digit-5", "acd-minutes"]


async def test_caller_presses_9_during_the_announcement_and_leaves_for_the_emergency_menu(
    app, engine
) -> None:
    queue_three_gjj_callers(engine)
    caller = WaitingCaller("1700000000.2", "9", presses=(1, "9"))
    await acd_announce.handle(caller, app)  # type: ignore[arg-type]
    assert caller.played == ["acd-ahead", "digit-1"]  # nothing after the key
    assert caller.variables == {V.ACD_KEY: "9"}


async def test_nobody_logged_in_for_the_skill_the_caller_is_asked_for_patience(app, engine) -> None:
    engine.enqueue("1700000000.5", "gjj", 0, time.time())
    place = await waiting_place(app.acd_redis, "1700000000.5")
    assert place == Place("gjj", 1, None)
    caller = WaitingCaller("1700000000.5", "9")
    await acd_announce.handle(caller, app)  # type: ignore[arg-type]
    assert caller.played == ["acd-next", "acd-patience"]


async def test_a_call_already_offered_to_an_agent_hears_nothing(app, engine) -> None:
    engine.login("1002", GJJ, time.time())
    [offer] = engine.enqueue("1700000000.6", "gjj", 0, time.time())
    assert offer.agent_id == "1002"
    for uniqueid in ("1700000000.6", "1700000000.77", "1;DEL acd:*", ""):
        caller = WaitingCaller(uniqueid, "9")
        await acd_announce.handle(caller, app)  # type: ignore[arg-type]
        assert caller.played == [], uniqueid
    assert engine.call_state("1700000000.6") == ("reserved", "1002")  # the read changed nothing


async def test_redis_down_the_caller_is_asked_for_patience_and_waits_on(config) -> None:
    down = config.model_copy(
        update={"redis": config.redis.model_copy(update={"port": free_port()})}
    )
    client = quick_client(down)
    caller = WaitingCaller("1700000000.8", "9")
    started = time.monotonic()
    await acd_announce.handle(caller, AgiApp(config=config, acd_redis=client))  # type: ignore[arg-type]
    assert caller.played == ["acd-patience"]
    assert time.monotonic() - started < acd_announce.REDIS_BUDGET_S + 1
    await client.aclose()


# ---- what is said --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("place", "said"),
    [
        (Place("gjj", 1, 20.0), "acd-next acd-wait-about digit-1 acd-minutes"),
        (
            Place("gjj", 12, 61.0),  # 11 ahead, 两分钟
            "acd-ahead num-10 digit-1 acd-callers acd-wait-about num-liang acd-minutes",
        ),
        (
            Place("gjj", 3, 20 * 60.0),  # 两位 ahead, 二十分钟
            "acd-ahead num-liang acd-callers acd-wait-about digit-2 num-10 acd-minutes",
        ),
        (
            Place("gjj", 30, 20 * 60.0 + 1),
            "acd-ahead digit-2 num-10 digit-9 acd-callers acd-wait-long",
        ),
        (Place("gjj", 2, None), "acd-ahead digit-1 acd-callers acd-patience"),
        (None, "acd-patience"),
    ],
)
def test_place_and_wait_become_prompts(place, said) -> None:
    assert acd_announce.announcement(place) == tuple(said.split())


def test_every_announcement_prompt_exists_as_audio() -> None:
    sounds = EXAMPLE.parent / "sounds" / "zh"
    names = ("acd-ahead", "acd-next", "acd-callers", "acd-wait-about", "acd-minutes")
    for name in (*names, "acd-wait-long", "acd-patience", "num-liang"):
        assert (sounds / f"{name}.wav").stat().st_size > 1000, name


def test_the_exit_key_argument_is_one_key_else_9() -> None:
    assert acd_announce.exit_key(("0",)) == "0"
    for bad in ((), ("",), ("99",), ("9,Hangup",), ("a",)):
        assert acd_announce.exit_key(bad) == "9"


# ---- the dialplan --------------------------------------------------------------------------
def waiting_room(config: HotlineConfig, announce_s: int) -> str:
    acd = config.acd.model_copy(update={"mode": "router", "announce_s": announce_s})
    text = render_text(config.model_copy(update={"acd": acd}), "demo")["extensions.conf"]
    return text.split("[hotline-acd-wait]", 1)[1].split("\n[", 1)[0]


def test_the_waiting_room_announces_every_announce_s_once_queued(config) -> None:
    room = waiting_room(config, 45)
    assert (
        f'GotoIf($["${{{V.ACD_QUEUED}}}" = "" | ${{EPOCH}} - 0${{{V.ACD_SAID}}} < 45]?wait)' in room
    )
    assert f"AGI(agi://{config.agi.host}:{config.agi.port}/acd_announce,9)" in room
    assert f'GotoIf($["${{{V.ACD_KEY}}}" = "9"]?9,1)' in room
    assert " same => n(wait),WaitExten(2,m(default))" in room


def test_announce_s_0_leaves_music_on_hold_only(config) -> None:
    room = waiting_room(config, 0)
    assert "acd_announce" not in room
    assert " same => n(wait),WaitExten(2,m(default))" in room
