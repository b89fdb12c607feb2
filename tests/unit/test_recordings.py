"""Recordings (issue 11): the spool mover, encryption at rest, retention, transcripts and the
index, with real files in a temporary folder (the recogniser is a stand-in decoder)."""

from __future__ import annotations

import logging
import os
import stat
import wave
from pathlib import Path

import numpy as np
import pytest

from asterisk_conf.render import render_text
from hotline.call import CallEvent, CallRecord
from hotline.config import load_config
from recordings.crypto import ENV_KEY, MAGIC, RecordingKey, RecordingKeyError, load_secret
from recordings.index import RecordingIndex
from recordings.mover import Mover, spool_legs
from speech.stereo import peaks, rms, speech_spans, split, stereo_wav, transcribe_stereo

REPO = Path(__file__).resolve().parents[2]
RATE = 8000
CALL = "1733150000.41"
LEG = "1733150012.57"


def tone(seconds: float, freq: float, at: float = 0.0, total: float | None = None) -> np.ndarray:
    """A tone of ``seconds`` starting at ``at`` inside ``total`` seconds of silence."""
    total = total if total is not None else at + seconds
    out = np.zeros(int(total * RATE), dtype=np.int16)
    t = np.arange(int(seconds * RATE)) / RATE
    a = int(at * RATE)
    out[a : a + t.size] = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return out


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def spool_call(spool: Path, call: str = CALL, leg: str = LEG, age_s: float = 5.0) -> None:
    """What MixMonitor leaves after an agent call: caller speaks 0–1 s, agent 2–3.5 s."""
    spool.mkdir(parents=True, exist_ok=True)
    base = spool / f"{call}_{leg}"
    write_wav(Path(f"{base}_caller.wav"), tone(1.0, 300, 0.0, 4.0))
    write_wav(Path(f"{base}_agent.wav"), tone(1.5, 700, 2.0, 4.0))
    write_wav(Path(f"{base}_mix.wav"), tone(1.0, 300, 0.0, 4.0))
    old = os.path.getmtime(f"{base}_caller.wav") - age_s
    for side in ("caller", "agent", "mix"):
        os.utime(f"{base}_{side}.wav", (old, old))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> RecordingKey:
    return RecordingKey(b"k" * 32)


def make_mover(tmp_path: Path, key: RecordingKey, ended: bool = True, **kw) -> Mover:  # type: ignore[no-untyped-def]
    announced = []
    m = Mover(
        tmp_path / "spool",
        tmp_path / "store",
        RecordingIndex(tmp_path / "rec.sqlite3"),
        key,
        ended=lambda call_id: ended,
        announce=announced.append,
        **kw,
    )
    m.announced = announced  # type: ignore[attr-defined]
    return m


# ---- encryption ---------------------------------------------------------------------------
def test_a_recording_encrypted_twice_differs_and_decrypts_only_under_its_own_id(key) -> None:
    a, b = key.encrypt(b"RIFF....WAVE", "x_1"), key.encrypt(b"RIFF....WAVE", "x_1")
    assert a != b and a.startswith(MAGIC) and b"WAVE" not in a
    assert key.decrypt(a, "x_1") == b"RIFF....WAVE"
    with pytest.raises(RecordingKeyError):
        key.decrypt(a, "y_2")  # renamed to another call: refused
    with pytest.raises(RecordingKeyError):
        RecordingKey(b"z" * 32).decrypt(a, "x_1")


def test_the_recording_key_file_is_created_private_and_the_environment_wins(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    path = tmp_path / "secrets" / "recording.key"
    secret = load_secret(path)
    assert len(secret) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == secret
    monkeypatch.setenv(ENV_KEY, "ab" * 16)
    assert load_secret(path) == bytes.fromhex("ab" * 16)
    monkeypatch.setenv(ENV_KEY, "not hex")
    with pytest.raises(RecordingKeyError):
        load_secret(path)


# ---- two channels -------------------------------------------------------------------------
def test_caller_and_agent_files_become_left_and_right_of_one_stereo_wav(tmp_path) -> None:
    c = write_wav(tmp_path / "c.wav", tone(1.0, 300, 0.0, 3.0))
    a = write_wav(tmp_path / "a.wav", tone(1.0, 700, 1.5, 2.5))  # shorter: padded
    caller, agent, rate = split(stereo_wav(c, a))
    assert rate == RATE and caller.size == agent.size == 3 * RATE
    assert rms(caller[:RATE]) > 1000 and rms(agent[:RATE]) == 0
    assert rms(agent[int(1.5 * RATE) : int(2.5 * RATE)]) > 1000
    assert rms(caller[2 * RATE :]) == 0


def test_speech_spans_and_peaks_follow_where_each_side_speaks(tmp_path) -> None:
    x = tone(1.0, 300, 0.5, 4.0)
    x[int(2.5 * RATE) : int(3.2 * RATE)] = tone(0.7, 400)
    spans = speech_spans(x, RATE)
    assert len(spans) == 2
    assert abs(spans[0][0] - 0.5) < 0.05 and abs(spans[0][1] - 1.5) < 0.05
    assert abs(spans[1][0] - 2.5) < 0.05
    data = stereo_wav(write_wav(tmp_path / "c.wav", x), None)
    p = peaks(data, 40)
    assert p["duration_s"] == 4.0 and len(p["caller"]) == 40  # type: ignore[arg-type]
    assert max(p["agent"]) == 0.0 and max(p["caller"]) > 0.2  # type: ignore[arg-type]


def test_each_channel_is_transcribed_into_timed_lines_of_its_speaker(tmp_path) -> None:
    data = stereo_wav(
        write_wav(tmp_path / "c.wav", tone(1.0, 300, 0.0, 4.0)),
        write_wav(tmp_path / "a.wav", tone(1.5, 700, 2.0, 4.0)),
    )
    heard = []

    def decode(audio16k: np.ndarray) -> str:
        heard.append(audio16k.size / 16000)
        return f"第{len(heard)}句"

    lines = transcribe_stereo(data, decode)
    assert [(x.speaker, x.text) for x in lines] == [("caller", "第1句"), ("agent", "第2句")]
    assert abs(lines[1].start - 2.0) < 0.05 and abs(lines[1].end - 3.5) < 0.05
    assert all(s < 2.0 for s in heard)  # each span alone, not the whole channel


# ---- the mover ----------------------------------------------------------------------------
def test_a_finished_call_is_stored_encrypted_0600_and_its_plaintext_deleted(tmp_path, key) -> None:
    spool_call(tmp_path / "spool")
    mover = make_mover(tmp_path, key)
    (rec,) = mover.move_ready()
    assert rec.id == f"{CALL}_{LEG}" and rec.call_id == CALL and rec.duration_s == 4.0
    assert os.listdir(tmp_path / "spool") == []
    stored = Path(rec.path)
    assert stored.parent == tmp_path / "store"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    blob = stored.read_bytes()
    assert b"RIFF" not in blob[:64] and b"WAVE" not in blob
    with pytest.raises(wave.Error):
        wave.open(str(stored)).close()
    caller, agent, _ = split(key.decrypt(blob, rec.id))
    assert rms(caller[:RATE]) > 1000 and rms(agent[2 * RATE : 3 * RATE]) > 1000
    assert mover.index.of_call(CALL)[0].state == "stored"
    assert [r.id for r in mover.announced] == [rec.id]  # type: ignore[attr-defined]


def test_a_call_still_going_on_is_left_in_the_spool(tmp_path, key) -> None:
    spool_call(tmp_path / "spool")
    assert make_mover(tmp_path, key, ended=False).move_ready() == []
    assert len(spool_legs(tmp_path / "spool")[0].files) == 3
    fresh = make_mover(tmp_path, key, ended=True, settle_s=60.0)
    assert fresh.move_ready() == []  # written to seconds ago: not settled


def test_files_of_a_call_never_seen_ended_are_moved_once_long_abandoned(tmp_path, key) -> None:
    spool_call(tmp_path / "spool", age_s=700)
    assert len(make_mover(tmp_path, key, ended=False, orphan_after_s=600).move_ready()) == 1


def test_an_unwritable_store_loses_nothing_and_counts_the_failure(tmp_path, key, caplog) -> None:
    spool_call(tmp_path / "spool")
    (tmp_path / "store").write_text("a file where the folder should be")
    mover = make_mover(tmp_path, key)
    assert mover.move_ready() == []
    assert len(os.listdir(tmp_path / "spool")) == 3  # plaintext kept for the next try
    fails = mover.index.failures()
    assert fails["count"] == 1 and fails["last"][0]["call_id"] == CALL
    assert "not stored" in caplog.text and "13800" not in caplog.text
    assert mover.move_ready() == []  # not retried at once
    (tmp_path / "store").unlink()
    mover._retry_at.clear()
    assert len(mover.move_ready()) == 1


def test_foreign_files_in_the_spool_are_ignored(tmp_path, key) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    for name in ("notes.txt", "13800001111_caller.wav", "../x_y_caller.wav.part"):
        (spool / Path(name).name).write_text("x")
    assert spool_legs(spool) == []
    assert make_mover(tmp_path, key).move_ready() == []


def test_retention_deletes_expired_recordings_and_logs_each_by_call_id(
    tmp_path, key, caplog
) -> None:
    caplog.set_level(logging.INFO, "recordings")
    clock = Clock()
    spool_call(tmp_path / "spool", age_s=5)
    mover = make_mover(tmp_path, key, retention_days=30, clock=clock)
    clock.now = os.path.getmtime(next((tmp_path / "spool").iterdir())) + 5
    (rec,) = mover.move_ready()
    clock.now += 29 * 86400
    assert mover.sweep() == []
    clock.now += 2 * 86400
    assert [r.id for r in mover.sweep()] == [rec.id]
    assert not Path(rec.path).exists()
    assert mover.index.of_call(CALL) == []
    assert mover.index.deletions()[0]["call_id"] == CALL
    assert f"recording of call {CALL} deleted (retention)" in caplog.text


def test_a_stored_recording_is_transcribed_and_found_by_its_words(tmp_path, key) -> None:
    spool_call(tmp_path / "spool")
    mover = make_mover(tmp_path, key)
    mover.move_ready()
    said = iter(["我要投诉小区噪音扰民", "您好，很高兴为您服务"])
    assert mover.transcribe_next(lambda audio: next(said)) is not None
    assert mover.transcribe_next(lambda audio: "") is None  # nothing left
    lines = mover.index.transcript(CALL)
    assert [(x["speaker"], x["text"]) for x in lines] == [
        ("caller", "我要投诉小区噪音扰民"),
        ("agent", "您好，很高兴为您服务"),
    ]
    assert mover.index.search_words("噪音") == [CALL]
    assert mover.index.search_words("噪音 投诉") == [CALL]
    assert mover.index.search_words("公积金") == []
    assert mover.index.search_words('" OR *') == []  # FTS operators are words, not syntax


def test_a_recording_that_does_not_decrypt_is_marked_not_retried(tmp_path, key) -> None:
    spool_call(tmp_path / "spool")
    mover = make_mover(tmp_path, key)
    (rec,) = mover.move_ready()
    Path(rec.path).write_bytes(b"garbage")
    mover.transcribe_next(lambda audio: "x")
    assert mover.index.get(rec.id).state == "untranscribable"  # type: ignore[union-attr]
    assert mover.transcribe_next(lambda audio: "x") is None


# ---- the call record and the dialplan -----------------------------------------------------
def test_the_call_record_points_at_its_recordings_once() -> None:
    rec = CallRecord(CALL)
    for _ in range(2):
        rec.apply(CallEvent("recording", CALL, 1.0, "recordings", data={"recording": "a_b"}))
    assert rec.recordings == ["a_b"]


def test_agent_calls_are_recorded_on_the_agents_channel_in_two_directions(tmp_path) -> None:
    config = load_config(REPO / "hotline.yaml")
    ext = render_text(config)["extensions.conf"]
    queues = [line for line in ext.splitlines() if "Queue(" in line]
    assert queues and all(line.endswith(",,,,,hotline-agent-record)") for line in queues)
    record = ext.split("[hotline-agent-record]")[1].split("\n[")[0]
    name = "hotline/${FILTER(0-9.,${CHANNEL(linkedid)})}_${FILTER(0-9.,${UNIQUEID})}"
    assert f"r({name}_agent.wav)" in record
    assert "t(hotline/" in record and "_caller.wav" in record
    entry = ext.split("[hotline-entry]")[1].split("\n[")[0]
    assert "MixMonitor" not in entry


def test_recording_off_or_from_the_answer_changes_the_dialplan(tmp_path) -> None:
    text = (REPO / "hotline.yaml").read_text()
    for enabled, ivr in (("false", "false"), ("true", "true")):
        path = tmp_path / f"{enabled}{ivr}.yaml"
        new = f"  enabled: {enabled}\n  include_ivr: {ivr}"
        path.write_text(text.replace("  enabled: true\n  include_ivr: false", new))
        ext = render_text(load_config(path))["extensions.conf"]
        queues = [line for line in ext.splitlines() if "Queue(" in line]
        assert not any("hotline-agent-record" in q for q in queues)
        entry = ext.split("[hotline-entry]")[1].split("\n[")[0]
        assert ("MixMonitor" in entry) == (ivr == "true")


def test_a_test_stack_keeps_its_recordings_in_its_run_dir_without_transcribing(tmp_path) -> None:
    from hotline import safe_yaml
    from testphones.sipp import offset_config

    moved = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), 40000, tmp_path)
    r = moved["recording"]
    assert r["store_dir"] == str(tmp_path / "recordings")
    assert r["index"] == str(tmp_path / "recordings.sqlite3")
    assert r["key_file"] == str(tmp_path / "secrets" / "recording.key")
    assert r["transcribe"] is False
