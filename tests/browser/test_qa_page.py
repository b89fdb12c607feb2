"""A QA officer opens the console's QA page in chromium (issue 11): finds a recorded call by a
word its caller said, plays it (the audio element really plays), clicks a transcript line to
seek, and saves a score that the CSV export then holds.

The recording is made from WAV files through the real mover, AES-GCM store and index
(``recordings.seed``); the page decrypts it through the audited endpoint.  No Asterisk.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_kit import screenshot, serve

from access import AccessStore
from console.app import Services, make_app
from recordings.index import TLine
from recordings.seed import local_config, seed_call

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
CALLER_WAV = SHARED / "audio" / "hotline" / "dev04.wav"
AGENT_WAV = REPO / "bench" / "qa_scripts" / "audio" / "g_good.wav"
PASSWORD = "browser-test-password"
CALL = "1733150000.41"
LINES = [
    TLine("agent", 0.3, 2.6, "您好，12345热线，很高兴为您服务。"),
    TLine("caller", 3.2, 8.5, "我要举报一个工地晚上十一点还在施工，噪音特别大，在拱墅区。"),
]


@pytest.fixture
def qa_url(tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    for wav in (CALLER_WAV, AGENT_WAV):
        if not wav.is_file():
            pytest.skip(f"test speech {wav} is missing")
    monkeypatch.delenv("HOTLINE_RECORDING_KEY", raising=False)
    config = local_config(REPO / "hotline.yaml", tmp_path)
    # the agent greets first, the caller speaks after: two sides of one call
    from speech.audio import read_wav, write_wav

    greeting, rate = read_wav(AGENT_WAV)
    import numpy as np

    demand, _ = read_wav(CALLER_WAV)
    lead = np.zeros(int(3.2 * rate), dtype=np.int16)
    write_wav(tmp_path / "caller.wav", np.concatenate([lead, demand]), rate)
    write_wav(tmp_path / "agent.wav", greeting, rate)
    seed_call(config, CALL, tmp_path / "caller.wav", tmp_path / "agent.wav", LINES,
              at=time.time() - 900, agent="1008")  # fmt: skip
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    access = AccessStore(tmp_path / "access.sqlite3", hasher=cheap)
    access.add_user("qa1", PASSWORD, "qa")
    with serve(make_app(config, Services(), access=access)) as url:
        yield url
    access.close()


def test_qa_finds_plays_seeks_and_scores_a_recorded_call(page, qa_url) -> None:
    page.goto(qa_url + "/qa")
    page.fill("#name", "qa1")
    page.fill("#password", PASSWORD)
    page.click("#login button")
    page.wait_for_function("document.getElementById('state').textContent.includes('已登录')")

    page.fill("#words", "噪音")
    page.click("#search button")
    row = page.locator(f"tr.call[data-call='{CALL}']")
    row.wait_for()
    assert page.locator("tr.call").count() == 1
    screenshot(page, "qa-search")

    row.click()
    page.wait_for_function("document.querySelectorAll('#transcript .line').length === 2")
    page.wait_for_function("document.getElementById('audio').readyState >= 1")
    duration = page.evaluate("document.getElementById('audio').duration")
    assert duration > 8

    page.click("#play")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.5", timeout=15000)
    page.click("#pause")
    page.locator("#transcript .line.caller").click()  # seeks to the caller's line (3.2 s)
    now = page.evaluate("document.getElementById('audio').currentTime")
    assert 3.1 <= now < 4.5, now

    proposal = page.inner_text("#scorecard")
    assert "建议：是" in proposal and "很高兴为您服务" in proposal
    for item in ("repeat", "callback", "closing"):
        page.select_option(f"#item-{item}", "false")
    page.select_option("#item-wait", "true")
    page.select_option("#item-attitude", "4")
    page.fill("#note", "问候规范，未复述诉求")
    page.click("#save_score")
    page.wait_for_function("document.getElementById('saved').textContent.includes('已保存')")
    assert "qa1" in page.inner_text("#scores")
    screenshot(page, "qa-player")

    csv_text = page.request.get(qa_url + "/api/qa/scores.csv").text()
    assert CALL in csv_text and "qa1" in csv_text and "问候规范" in csv_text
