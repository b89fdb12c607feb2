"""A real call with two Listen steps keeps the draft of the second one (issue 7).

``speech.mode: before_menu`` and a main-menu key ``#`` that lets the caller speak: the caller
says nothing when first asked (the speech service publishes an empty ``no_speech`` draft),
presses ``#`` in the menu, says the start of a matter and hangs up mid-sentence.  The IVR's
draft keeper for the second listen starts at once, while the call's latest draft in Redis is
still the first (empty) one: waiting without the listen id, it stored that one (the stored
draft stayed ``no_speech``, empty); waiting for its own listen it stores what the caller said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest
from instances import stack_instance
from test_speech_calls import AUDIO, SpeechHotline, start_speech_hotline

from cli.commands.call import place_call, prompt_seconds
from hotline.config import HotlineConfig
from testphones.sipp import CallerSpec, key_steps, prepare_media

pytestmark = [pytest.mark.integration, pytest.mark.speech]

INSTANCE, OFFSET = stack_instance("twolisten")


def speak_or_press_hash(data: dict) -> None:
    data["menus"]["main"]["options"]["#"] = "speech:demand"


@pytest.fixture(scope="module")
def two_listen_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechHotline]:
    if not (AUDIO / "dev01.wav").is_file():
        pytest.skip(f"no hotline utterances in {AUDIO} (set HOTLINE_SHARED)")
    tmp = tmp_path_factory.mktemp("two-listens")
    h, stack = start_speech_hotline(tmp, "before_menu", INSTANCE, OFFSET, speak_or_press_hash)
    try:
        yield h
    finally:
        h.phones.stop()
        stack.down()  # type: ignore[attr-defined]


async def drafts_until(config: HotlineConfig, call_id: str, done, wait_s: float) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every distinct draft the ticket store held for ``call_id`` until ``done(draft)``."""
    from tickets.sqlite import SqliteTicketStore

    store = SqliteTicketStore.from_config(config)
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            draft = await store.get_draft(call_id)
            if draft is not None and draft not in seen:
                seen.append(draft)
                if done(draft):
                    break
            await asyncio.sleep(0.2)
        return seen
    finally:
        await store.close()


async def record_drafts(config: HotlineConfig, call_id: str, n: int, wait_s: float) -> list[dict]:
    """The call record's drafts (one per listen, in order) once it holds ``n`` of them."""
    from calls.store import SqliteCallStore

    store = SqliteCallStore(config.calls.path)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            record = await store.get(call_id)
            drafts = list(record.drafts) if record is not None else []
            if len(drafts) >= n or time.monotonic() > deadline:
                return drafts
            await asyncio.sleep(0.3)
    finally:
        await store.close()


def test_the_second_listen_of_a_call_keeps_its_own_draft(two_listen_hotline, tmp_path) -> None:
    from speech.audio import write_wav
    from speech.pcap import RATE, read_pcm8k

    config = two_listen_hotline.config
    cut = tmp_path / "dev01-cut.wav"  # 3.5 s of "我要投诉我们小区楼下的饭店油烟太大…"
    write_wav(cut, read_pcm8k(AUDIO / "dev01.wav")[: int(3.5 * RATE)].astype(np.int16), RATE)
    # greeting, first "请简要说出…" and 6 s of silence (no_speech), then the main menu: "#"
    # well inside it; then the second "请简要说出…" and the words; the phone hangs up after them
    first_listen_over = prompt_seconds("greeting") + prompt_seconds("speak-demand") + 6.0
    key_at = first_listen_over + 8.0
    speak_after = prompt_seconds("speak-demand") + 1.5
    plan, media, media_s = prepare_media(key_steps("#", key_at), tmp_path / "m", cut, speak_after)
    spec = CallerSpec(
        config.sip.host, config.sip.port, config.hotline.number, "13900009931",
        digits=plan, hold_s=0.2, media_pcap=media, media_s=media_s,
    )  # fmt: skip

    call = asyncio.run(place_call(config, spec, tmp_path / "call", timeout_s=240))

    assert call["sipp"]["ok"] and call["agent"] is None, call
    seen = asyncio.run(
        drafts_until(config, call["linkedid"], lambda d: d.get("ended_by") == "hangup", 40.0)
    )
    listens = asyncio.run(record_drafts(config, call["linkedid"], 2, 20.0))

    def brief(drafts: list[dict]) -> list[tuple]:
        return [(d.get("ended_by"), d.get("listen_id"), d.get("transcript")) for d in drafts]

    print("drafts the ticket store held, in order:", brief(seen))
    print("the call record's drafts, one per listen:", brief(listens))
    # the call record has both listens, in order: the silent one, then the spoken one
    assert [d.get("ended_by") for d in listens] == ["no_speech", "hangup"], listens
    first, second = listens
    assert not first.get("transcript") and second.get("transcript")
    assert first["listen_id"] != second["listen_id"]
    # the ticket store keeps the second listen's draft (waited for by its listen id), not the first
    assert seen, "no draft stored at all"
    last = seen[-1]
    assert last.get("ended_by") == "hangup" and last.get("transcript"), (
        f"the call's stored draft is not the second listen's: {seen}"
    )
    assert last["listen_id"] == second["listen_id"]
    assert last["caller"] == "13900009931"
