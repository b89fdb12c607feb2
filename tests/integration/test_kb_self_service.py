"""Callers answered by the knowledge base in a real call (第十一条): an admin publishes an
article through the console (its spoken answer synthesised then, into Asterisk's prompts),
a caller presses 2 for 公积金, says a consultation the article covers, hears "关于…，为您播报"
and the answer, presses 2, and the call record says self-served with the article; a caller
who presses 0 instead reaches the agent, whose screen shows the article that was played.

Same kind of instance as test_speech_calls.py, with ``kb.self_service: [gjj]`` and an empty
knowledge base (only the published article is synthesised: seconds, not minutes).
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from instances import stack_instance
from test_agent_screen import login, read_feed
from test_call_records import record_of
from test_speech_calls import AUDIO, KEY_AT_S, SpeechHotline, start_speech_hotline

from cli.commands.call import prompt_seconds
from kb.io import parse_markdown
from kb.service import REPO
from runtime.rootfs import SOUNDS_DIR
from speech.pcap import call_media_pcap, with_trailing_silence
from testphones.sipp import CallerSpec

pytestmark = [pytest.mark.integration, pytest.mark.speech]

PASSWORD = "itest-console-password"
ARTICLE = "gjj-rent"
SAID = AUDIO / "dev02.wav"
"""我想咨询一下公积金提取需要哪些材料。"""
CALL_THRESHOLD = 0.8
"""These calls test the path, not the accuracy (bench/kb_bench.py measures that, with the
fitted threshold 0.898): Whisper base hears dev02 differently from call to call (工基金体体使
→ confidence 0.897, 工机晶体使 → above 0.898), so the fitted weights are kept and only the
threshold is lowered here, for a stable test."""


@pytest.fixture(scope="module")
def kb_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechHotline]:
    from access import AccessStore

    tmp = tmp_path_factory.mktemp("kb-itest")
    fitted = json.loads((REPO / "kb/data/calibration.json").read_text(encoding="utf-8"))
    calibration = tmp / "calibration.json"
    calibration.write_text(json.dumps({**fitted, "threshold": CALL_THRESHOLD}), encoding="utf-8")

    def self_service(data: dict) -> None:
        data["kb"].update(self_service=["gjj"], import_sample=False, calibration=str(calibration))

    instance, offset = stack_instance("kb")
    h, stack = start_speech_hotline(tmp, instance=instance, offset=offset, tweak=self_service)
    users = AccessStore.from_config(h.config)
    users.add_user("admin1", PASSWORD, "admin")
    for a in h.config.agents:
        users.add_user(f"agent{a.id}", PASSWORD, "agent", a.id)
    users.close()
    try:
        yield h
    finally:
        h.phones.stop()
        stack.down()  # type: ignore[attr-defined]


def publish(h: SpeechHotline, article_id: str) -> dict:
    """The admin proposes and publishes a sample article through the console's API."""
    sample = {a.id: a for a in parse_markdown((REPO / "kb/data/sample_kb.md").read_text("utf-8"))}
    body = sample[article_id].to_json()
    with httpx.Client(base_url=h.console_url, timeout=300) as http:
        deadline = time.monotonic() + 120
        while not http.get("/api/health").json().get("kb_ready"):
            assert time.monotonic() < deadline, "the console's knowledge base never got ready"
            time.sleep(1)
        r = http.post("/api/login", json={"name": "admin1", "password": PASSWORD, "bearer": True})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        r = http.put(f"/api/kb/articles/{article_id}", json=body, headers=auth)
        assert r.status_code == 200, r.text
        r = http.post(f"/api/kb/articles/{article_id}/publish", json={}, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()


def self_service_caller(h: SpeechHotline, caller: str, then: str = "2") -> CallerSpec:
    """2 during the greeting, the consultation after speak-demand, then ``then`` every 2.5 s
    from just after the words (a key only counts while the article or its menu plays)."""
    speak_at = KEY_AT_S + (prompt_seconds("speak-demand") or 6.0) + 1.0
    folder = h.workdir / "media" / caller
    wav = with_trailing_silence(SAID, folder / "speech.wav")
    with wave.open(str(wav)) as w:
        spoken_s = w.getnframes() / w.getframerate()
    keys = [(KEY_AT_S, "2")] + [(speak_at + spoken_s + 3 + 2.5 * i, then) for i in range(28)]
    info = call_media_pcap(folder / "media.pcap", keys, wav, speech_at_s=speak_at)
    return CallerSpec.into(h.config, caller=caller, digits="", hold_s=5,
                           media_pcap=info.path, media_s=info.duration_s)  # fmt: skip


def test_caller_hears_the_answer_presses_2_and_the_record_says_self_served(kb_hotline) -> None:
    h = kb_hotline
    published = publish(h, ARTICLE)
    print(f"published with its spoken answer in {published['seconds']} s")
    assert published["spoken_ready"], published
    wav = (Path(h.config.kb.spoken_dir) / f"kb-{ARTICLE}.wav").resolve()
    prompts = (h.stack.rootfs / SOUNDS_DIR).resolve()  # type: ignore[attr-defined]
    assert wav.exists() and wav.parent.parent == prompts  # where Asterisk plays prompts from
    time.sleep(6)  # the IVR's index looks for newly published articles every 5 s

    call = asyncio.run(h.place(self_service_caller(h, "13900008811")))
    rec = record_of(h, call)

    assert call["agent"] is None, call  # nobody had to answer
    assert [(k["action"], k.get("article")) for k in rec.kb] == [
        ("offered", ARTICLE), ("self_served", ARTICLE)
    ], (rec.kb, rec.drafts)  # fmt: skip
    assert rec.outcome == "self_served" and rec.route == "hangup"
    assert rec.ivr is not None and rec.ivr.hangup_reason == "self_served"
    assert rec.ivr.ivr_path.startswith("main>2>kb") and rec.ivr.ivr_path.endswith(">2")


def test_caller_presses_0_after_the_answer_and_the_agent_sees_the_article_played(
    kb_hotline,
) -> None:
    h = kb_hotline
    agents = sorted(a.id for a in h.config.agents if "gjj" in a.seats)
    auth = {a: login(h.console_url, f"agent{a}") for a in agents}
    feeds: dict[str, list[dict]] = {a: [] for a in agents}

    async def scenario() -> dict:
        async with httpx.AsyncClient(base_url=h.console_url, timeout=None) as client:
            ready = {a: asyncio.Event() for a in agents}
            readers = [asyncio.create_task(read_feed(client, a, auth[a], feeds[a], ready[a]))
                       for a in agents]  # fmt: skip
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready.values())), 10)
            call = await h.place(self_service_caller(h, "13900008812", then="0"))
            await asyncio.sleep(1.0)
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            return call

    if not (Path(h.config.kb.spoken_dir) / f"kb-{ARTICLE}.wav").exists():
        publish(h, ARTICLE)
        time.sleep(6)
    call = asyncio.run(scenario())
    rec = record_of(h, call)

    assert call["agent"] is not None, call
    answered = call["agent"]["endpoint"].removeprefix("agent")
    shown = [e for e in feeds[answered] if e.get("call_id") == call["linkedid"]]
    assert shown and shown[0]["event"] == "call", shown
    played = shown[0]["kb_played"]
    assert played["article"] == ARTICLE and played["title"], played
    assert [k["action"] for k in rec.kb] == ["offered"] and rec.outcome == "agent"
    assert rec.ivr is not None and ">kb>" in rec.ivr.ivr_path + ">"
