"""Real calls for the calendar and the incident notices (第十三条), on the ``calendar`` stack:

* a statutory holiday closes the 公积金 seat (hours 09:00–17:00 on working days): a caller
  pressing 2 hears ``seat-closed`` and reaches the 综合席; on a 调休 Saturday the same key
  reaches 公积金.  The AGI's clock is moved by the test-only ``HOTLINE_TEST_CLOCK_FILE``;
* an admin uploads an mp3 through the console and sets it as a notice for all callers: a call
  in the window hears it after the greeting (Asterisk streamed the converted file to its end),
  a call after the window does not;
* a notice typed as text for the 人社 seat is synthesised by the TTS and played to a caller
  pressing 1.

Evidence is Asterisk's AGI debug log: the ``STREAM FILE`` of the prompt and Asterisk's answer
(``endpos`` > 0: the file existed and was played).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import Hotline, _why_not_runnable
from instances import stack_instance

from agi_scripts.call_start import TEST_CLOCK_ENV
from cli.commands.call import prompt_seconds
from hotline import safe_yaml
from hotline.config import load_config
from testphones.sipp import offset_config, start_phones

pytestmark = pytest.mark.integration

INSTANCE, OFFSET = stack_instance("calendar")
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "itest-calendar-password"
BEIJING = timezone(timedelta(hours=8))
NATIONAL_DAY = datetime(2026, 10, 2, 10, 0, tzinfo=BEIJING)
MAKEUP_SATURDAY = datetime(2026, 10, 10, 10, 0, tzinfo=BEIJING)
TYPED: dict = {}
"""The typed 人社 notice, set when the stack is up."""
OFFICE = {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "17:00"}


@pytest.fixture(scope="module")
def cal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    from access import AccessStore
    from runtime.procs import StackError
    from runtime.stack import Stack

    tmp = tmp_path_factory.mktemp("calendar-itest")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    data["menus"]["main"]["timeout_s"] = 3
    data["menus"]["main"]["retries"] = 2
    data["speech"] = {"mode": "off"}
    data["kb"]["import_sample"] = False
    data["calendar"] = {"seats": {"gjj": {"hours": [OFFICE], "closed_target": "seat:zonghe"}}}
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    clock = tmp / "clock"
    clock.write_text("0", encoding="ascii")
    os.environ[TEST_CLOCK_ENV] = str(clock)  # inherited by the FastAGI server
    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones = None
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the calendar stack did not come up: {exc}", pytrace=False)
        log_start = stack.asterisk_log.stat().st_size
        stack.cli("agi set debug on")
        users = AccessStore.from_config(config)
        users.add_user("admin1", PASSWORD, "admin")
        users.close()
        phones = start_phones(config, tmp / "phones")
        h = Hotline(config, config_path, stack, phones, tmp, log_start)
        TYPED.update(set_typed_notice(h))  # synthesised while the other calls run
        yield h
    finally:
        os.environ.pop(TEST_CLOCK_ENV, None)
        if phones is not None:
            phones.stop()
        stack.down()


def set_clock(h: Hotline, at: datetime | None) -> None:
    """Move the AGI's call clock to ``at`` (None: real time)."""
    offset = 0.0 if at is None else (at - datetime.now(UTC)).total_seconds()
    (h.workdir / "clock").write_text(f"{offset:.0f}", encoding="ascii")


def streamed(h: Hotline, channel: str) -> list[tuple[str, int]]:
    """``(prompt, endpos)`` for every STREAM FILE on ``channel``: Asterisk's answer says how
    far it played (0 with result=-1: the file was missing)."""
    with open(h.stack.asterisk_log, "rb") as fh:  # type: ignore[attr-defined]
        fh.seek(h.asterisk_log_start)
        lines = fh.read().decode(errors="replace").splitlines()
    out: list[tuple[str, int]] = []
    pending: str | None = None
    for line in lines:
        if f"<{channel}>AGI Rx << " in line:
            m = re.search(r'STREAM FILE "?hotline/([\w/-]+)', line)
            pending = m.group(1) if m else None
        elif f"<{channel}>AGI Tx >> " in line and pending is not None:
            m = re.search(r"endpos=(\d+)", line)
            out.append((pending, int(m.group(1)) if m else 0))
            pending = None
    return out


@contextmanager
def console(h: Hotline) -> Iterator[httpx.Client]:
    """The stack's console, logged in as the admin."""
    url = f"http://127.0.0.1:{h.config.console_port}"
    with httpx.Client(base_url=url, timeout=300) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = http.post("/api/login", json={"name": "admin1", "password": PASSWORD,
                                                  "bearer": True})  # fmt: skip
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the console did not come up"
                time.sleep(1)
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield http


def test_national_day_closes_gongjijin_and_the_makeup_saturday_opens_it(cal) -> None:
    set_clock(cal, NATIONAL_DAY)
    holiday = cal.place_call("2", caller="13900003101", hold_s=10)
    set_clock(cal, MAKEUP_SATURDAY)
    makeup = cal.place_call("2", caller="13900003102", hold_s=10)
    set_clock(cal, None)

    assert holiday["seat"] == "zonghe" and holiday["agent"] is not None, holiday
    assert ("seat-closed", 0) not in streamed(cal, holiday["channel"])
    assert [p for p, pos in streamed(cal, holiday["channel"]) if pos > 0].count("seat-closed") == 1
    assert makeup["seat"] == "gjj" and makeup["agent"] is not None, makeup
    assert "seat-closed" not in [p for p, _ in streamed(cal, makeup["channel"])]


def test_an_uploaded_mp3_notice_plays_in_its_window_and_not_after(cal, tmp_path: Path) -> None:
    set_clock(cal, None)
    wav, mp3 = tmp_path / "n.wav", tmp_path / "n.mp3"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(wav), "synth", "2", "sine", "600"],
                   check=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(mp3)], check=True)
    now = datetime.now(UTC)
    with console(cal) as http:
        r = http.put("/api/admin/prompts/up-itest", content=mp3.read_bytes())
        assert r.status_code == 201, r.text
        body = {"title": "停水", "text": "停水通告（录音）", "recording": "up-itest",
                "start": (now - timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(seconds=25)).isoformat()}  # fmt: skip
        r = http.post("/api/admin/notices", json=body)
        assert r.status_code == 201 and r.json()["voice_ready"], r.text
        ends = datetime.fromisoformat(r.json()["end"])
    key_at = (prompt_seconds("greeting") or 16) + 2 + 2.0
    inside = cal.place_call("0", caller="13900003201", key_after_s=key_at, hold_s=8)
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds() + 1))
    after = cal.place_call("0", caller="13900003202", key_after_s=key_at, hold_s=8)

    prompt = f"custom-{INSTANCE}/uploads/up-itest"
    heard = streamed(cal, inside["channel"])
    assert [p for p, _ in heard][:2] == ["greeting", prompt], heard
    assert dict(heard)[prompt] > 8000, heard  # 2 s of 8 kHz audio, played to the end
    assert inside["seat"] == "zonghe"
    assert prompt not in [p for p, _ in streamed(cal, after["channel"])]
    assert after["seat"] == "zonghe"


def set_typed_notice(h: Hotline) -> dict:
    """The admin types a notice for callers choosing 人社 (it is synthesised in the
    background by the console)."""
    now = datetime.now(UTC)
    with console(h) as http:
        body = {"title": "社保系统升级", "text": "社保系统今晚升级，线上业务暂停办理。",
                "seats": ["renshe"], "start": now.isoformat(),
                "end": (now + timedelta(hours=1)).isoformat()}  # fmt: skip
        r = http.post("/api/admin/notices", json=body)
        assert r.status_code == 201, r.text
        return r.json()


def test_a_typed_notice_for_renshe_is_synthesised_and_played_on_choosing_it(cal) -> None:
    set_clock(cal, None)
    made = TYPED
    assert made["seats"] == ["renshe"] and made["prompt"].startswith("notices/notice-")
    with console(cal) as http:
        deadline = time.monotonic() + 240
        while not next(n for n in http.get("/api/admin/notices").json()["notices"]
                       if n["id"] == made["id"])["voice_ready"]:  # fmt: skip
            assert time.monotonic() < deadline, "the notice was never synthesised"
            time.sleep(2)
        print(f"notice ready {time.monotonic() - deadline + 240:.1f} s into this test")
    call = cal.place_call("1", caller="13900003301", hold_s=12)
    heard = streamed(cal, call["channel"])
    prompt = f"custom-{INSTANCE}/{made['prompt']}"
    assert dict(heard).get(prompt, 0) > 8000, heard
    assert [p for p, _ in heard].index(prompt) < [p for p, _ in heard].index("transfer")
    assert call["seat"] == "renshe"
