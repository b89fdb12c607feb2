"""The waiting caller's side of callbacks: the offer after the announcement when the estimate
reaches ``acd.callback.offer_after_s``, the number confirmation dialogue (``acd_callback``),
the config that enables it and the waiting room's dialplan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from redis.asyncio import Redis as AsyncRedis
from test_acd_announce import GJJ, WaitingCaller

from acd import callback
from agi_scripts.handlers import acd_announce, acd_callback
from agi_scripts.protocol import parse_env
from agi_scripts.server import AgiApp
from asterisk_conf.render import render_text
from hotline import dialplan_vars as V
from hotline import safe_yaml
from hotline.config import AcdCallback, HotlineConfig, load_config
from hotline.privacy import CallerKey

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"


def callback_config(tmp: Path, **callback_fields: object) -> HotlineConfig:
    data = safe_yaml.load_file(EXAMPLE)
    data["acd"]["mode"] = "router"
    data["acd"]["callback"] = {"enabled": True, "offer_after_s": 600, **callback_fields}
    data["tickets"]["key_file"] = str(tmp / "pii.key")
    path = tmp / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_config(path)


@pytest.fixture
async def app(tmp_path: Path, acd_redis_port: int) -> AsyncIterator[AgiApp]:
    client = AsyncRedis(port=acd_redis_port)
    yield AgiApp(config=callback_config(tmp_path), acd_redis=client)
    await client.aclose()


# ---- the offer -----------------------------------------------------------------------------
async def test_estimate_past_the_threshold_offers_key_1_after_the_announcement(
    app: AgiApp, engine
) -> None:
    now = time.time()
    engine.login("1002", GJJ, now, ready=False)
    for i in range(3):  # 3rd in line: 3 × 300 s ÷ 1 agent = 900 s ≥ 600 s
        engine.enqueue(f"1700000000.{i + 1}", "gjj", 0, now + i)
    third = WaitingCaller("1700000000.3", "9", presses=(7, "1"))
    await acd_announce.handle(third, app)  # type: ignore[arg-type]
    assert third.played[-1] == "acd-cb-offer"
    assert set(third.escapes) == {"91"}  # 1 works during every prompt once offered
    assert third.variables == {V.ACD_CB_OFFER: "1", V.ACD_KEY: "1"}
    first = WaitingCaller("1700000000.1", "9")  # 300 s: below the threshold
    await acd_announce.handle(first, app)  # type: ignore[arg-type]
    assert "acd-cb-offer" not in first.played and first.variables == {}


def test_offer_rules() -> None:
    on = AcdCallback(enabled=True, offer_after_s=120)
    assert callback.should_offer(120.0, on) and callback.should_offer(None, on)
    assert not callback.should_offer(119.0, on)
    assert not callback.should_offer(None, AcdCallback(enabled=False))


# ---- the number ----------------------------------------------------------------------------
class Dialogue(WaitingCaller):
    """A caller in the confirmation dialogue: ``keys`` answer each prompt that takes keys, in
    order (``None``: no key); ``typed`` answers each GET DATA."""

    def __init__(self, callerid: str, keys: list[str | None], typed: list[str] = ()) -> None:
        super().__init__("1700000000.5", "9")
        lines = ["agi_uniqueid: 1700000000.5", f"agi_callerid: {callerid}", "agi_arg_1: 9"]
        self.env = parse_env("\n".join(lines) + "\n\n")
        self.keys, self.typed = list(keys), list(typed)

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        self.played.append(prompt.removeprefix("hotline/"))
        if prompt.endswith("acd-cb-confirm") and self.keys:
            return self.keys.pop(0)
        return None

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        return None

    async def get_data(self, prompt: str, timeout_ms: int = 5000, max_digits: int = 1) -> str:
        self.played.append(prompt.removeprefix("hotline/"))
        assert max_digits == callback.MAX_DIGITS + 1
        return self.typed.pop(0) if self.typed else ""


def decrypted(app: AgiApp, caller: Dialogue) -> str:
    key = CallerKey.from_file(app.config.tickets.key_file)  # type: ignore[union-attr]
    return key.decrypt(caller.variables[V.ACD_CB_TOKEN])


async def test_own_number_is_read_back_by_its_last_four_digits_and_confirmed(
    app: AgiApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caller = Dialogue("+8613800005678", ["1"])
    await acd_callback.handle(caller, app)  # type: ignore[arg-type]
    assert "confirmed (own)" in caplog.text and "5678" not in caplog.text  # never logged
    assert caller.played == ["acd-cb-number", "digit-5", "digit-6", "digit-7", "digit-8",
                             "acd-cb-confirm"]  # fmt: skip
    assert decrypted(app, caller) == "13800005678"
    assert "13800005678" not in caller.variables[V.ACD_CB_TOKEN]


async def test_caller_keys_in_another_number_after_a_wrong_one(app: AgiApp) -> None:
    caller = Dialogue("13800005678", ["2", "1"], typed=["12345", "057187001234"])
    await acd_callback.handle(caller, app)  # type: ignore[arg-type]
    assert caller.played.count("acd-cb-enter") == 2
    assert "acd-cb-invalid" in caller.played  # 12345: too short
    assert caller.played[-5:] == ["digit-1", "digit-2", "digit-3", "digit-4", "acd-cb-confirm"]
    assert decrypted(app, caller) == "057187001234"


async def test_withheld_number_is_asked_for_and_no_confirmation_keeps_the_caller_waiting(
    app: AgiApp,
) -> None:
    caller = Dialogue("anonymous", [None, None, None], typed=["13900001111"] * 3)
    await acd_callback.handle(caller, app)  # type: ignore[arg-type]
    assert caller.played[0] == "acd-cb-enter"
    assert V.ACD_CB_TOKEN not in caller.variables  # back to the music, place kept


async def test_emergency_key_leaves_the_dialogue_for_the_emergency_menu(app: AgiApp) -> None:
    caller = Dialogue("13800005678", ["9"])
    await acd_callback.handle(caller, app)  # type: ignore[arg-type]
    assert caller.variables == {V.ACD_KEY: "9"}


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("13800005678", "13800005678"),
        ("+86 138-0000-5678", "13800005678"),
        ("87001234", "87001234"),
        ("057187001234", "057187001234"),
        ("12345", None),  # too short
        ("1380000567812345", None),  # too long
        ("+44 20 7946 0958", None),  # abroad: not called back
        ("138000056a8", None),
        ("anonymous", None),
        (None, None),
        ("1" * 40, None),
        ("0012125550100", None),
        ("11111111111", None),  # not a mobile
        ("000000000", None),
    ],
)
def test_callback_numbers_are_digits_only_within_limits(text, number) -> None:
    assert callback.callback_number(text) == number


def test_the_dial_string_takes_only_a_valid_number() -> None:
    assert callback.dial_string("13800005678") == "PJSIP/13800005678@carrier"
    for bad in ("138,Hangup", "1380000567&x", "12345"):
        with pytest.raises(ValueError):
            callback.dial_string(bad)


# ---- config and dialplan ---------------------------------------------------------------------
def test_callbacks_need_the_router_and_sane_timers(tmp_path: Path) -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["acd"]["mode"] = "app_queue"
    data["acd"]["callback"] = {"enabled": True}
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(Exception, match=r"acd\.callback\.enabled"):
        load_config(path)
    for bad in ({"retries": -1}, {"ring_s": 1}, {"retry_after_s": 0}, {"offer_after_s": "x"}):
        with pytest.raises(ValidationError):
            AcdCallback(**bad)


def test_the_engine_gets_the_callback_policy(tmp_path: Path) -> None:
    config = callback_config(tmp_path, retries=3, retry_after_s=90, ring_s=25)
    policy = config.acd_settings().callback
    assert (policy.retries, policy.retry_after_s) == (3, 90)
    assert policy.ring_s > 25  # the caller's ring plus set-up and greeting


def test_the_waiting_room_takes_key_1_only_once_offered(tmp_path: Path) -> None:
    config = callback_config(tmp_path)
    text = render_text(config, "demo")["extensions.conf"]
    room = text.split("[hotline-acd-wait]", 1)[1].split("\n[", 1)[0]
    assert f'exten => 1,1,GotoIf($["${{{V.ACD_CB_OFFER}}}" = "1"]?cb,1:t,1)' in room
    assert "AGI(agi://127.0.0.1:4573/acd_callback,9)" in room
    assert f"UserEvent(AcdCallback,CallId: ${{{V.CALL_ID}}},Token:" in room
    assert f"[{V.ACD_CALLBACK_CONTEXT}]" in text
    plain = render_text(load_config(EXAMPLE), "demo")["extensions.conf"]
    assert "acd_callback" not in plain and V.ACD_CALLBACK_CONTEXT not in plain


def test_every_callback_prompt_exists_as_audio() -> None:
    sounds = EXAMPLE.parent / "sounds" / "zh"
    for name in ("offer", "number", "confirm", "enter", "invalid", "booked", "failed", "hello"):
        assert (sounds / f"acd-cb-{name}.wav").stat().st_size > 1000, name
