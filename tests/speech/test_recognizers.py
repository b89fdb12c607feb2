"""The real recognisers on real audio.

Whisper base (int8, CPU) on three recorded Mandarin clips and the 16 hotline utterances
(8 kHz phone band); Vosk with the Korean small model from PyPI for the streaming mechanics
(the Mandarin Vosk model cannot be downloaded here).  CER floors were set from measured
values plus a margin (see docs/decisions.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hotline.config import HotlineConfig, load_config
from speech import audio as au
from speech.endpoint import EndpointConfig, EndpointDetector, EndReason
from speech.metrics import cer
from speech.models import korean_vosk_model_dir
from speech.recognizers import (
    VoskRecognizer,
    WhisperRecognizer,
    make_recognizer,
    transcribe_file,
)

pytestmark = pytest.mark.speech

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared/audio"

# Measured on this machine (whisper-base int8, 1 thread, short-window decoding):
# real clips mean CER 0.043, hotline utterances mean CER 0.211 (see docs/decisions.md).
REAL_MEAN_CER_FLOOR = 0.10
HOTLINE_MEAN_CER_FLOOR = 0.28


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(ROOT / "hotline.yaml")


@pytest.fixture(scope="module")
def whisper(config: HotlineConfig) -> WhisperRecognizer:
    return WhisperRecognizer(config, cpu_threads=1)


@pytest.fixture(scope="module")
def vosk_ko() -> VoskRecognizer:
    return VoskRecognizer(korean_vosk_model_dir())


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_whisper_transcribes_recorded_mandarin(whisper: WhisperRecognizer) -> None:
    refs = [line.split("\t") for line in (SHARED / "real/transcripts.tsv").read_text().splitlines()]
    rates = []
    print()
    for name, ref in refs:
        tr = transcribe_file(whisper, SHARED / "real" / name)
        rate = cer(tr.text, ref)
        rates.append(rate)
        print(f"{name:28} CER {rate:.3f}  {tr.text}  (ref {ref}; RTF "
              f"{tr.decode_seconds / tr.audio_seconds:.2f}, conf {tr.confidence})")  # fmt: skip
        assert tr.engine == "whisper" and tr.audio_seconds > 3
    mean = float(np.mean(rates))
    print(f"mean CER on real clips: {mean:.3f}")
    assert mean <= REAL_MEAN_CER_FLOOR


def test_whisper_on_hotline_callers_in_phone_band(whisper: WhisperRecognizer) -> None:
    rows = _rows(SHARED / "hotline/expected.tsv")
    rates = []
    print()
    for row in rows:
        tr = transcribe_file(whisper, SHARED / "hotline" / f"{row['id']}.wav")
        rate = cer(tr.text, row["text"])
        rates.append(rate)
        print(f"{row['id']} CER {rate:.2f}  {tr.text}  | {row['text']}")
        assert tr.text, f"{row['id']}: empty transcript"
        # simplified Chinese out: no traditional forms of characters we know are common
        assert not set(tr.text) & set("們這個說話時點電話號碼醫補辦業資")
    mean = float(np.mean(rates))
    print(f"mean CER on 16 hotline utterances (8 kHz): {mean:.3f}")
    assert mean <= HOTLINE_MEAN_CER_FLOOR


def test_whisper_decodes_while_the_caller_talks(whisper: WhisperRecognizer) -> None:
    """A long caller: segments are decoded at pauses, so finish() has little left to do."""
    clips = [au.read_wav(SHARED / "hotline" / f"dev{i:02d}.wav")[0] for i in (1, 4, 13)]
    samples = np.concatenate(clips)  # ~21 s with natural pauses between the sentences
    session = whisper.start(8000)
    partials = []
    for i in range(0, samples.size, 1600):
        text = session.feed(samples[i : i + 1600].tobytes())
        if text:
            partials.append(text)
    tr = session.finish()
    print(
        f"\n{len(partials)} partials; finish() took {tr.final_decode_seconds:.2f} s of "
        f"{tr.decode_seconds:.2f} s decoding for {tr.audio_seconds:.1f} s: {tr.text}"
    )
    assert len(partials) >= 2
    assert session.segments_decoded >= 3
    assert tr.final_decode_seconds < tr.decode_seconds / 2
    assert "油烟" in tr.text and "噪音" in tr.text


def test_whisper_says_nothing_for_silence(whisper: WhisperRecognizer) -> None:
    session = whisper.start(8000)
    session.feed(np.zeros(8000 * 3, np.int16).tobytes())
    assert session.finish().text == ""


def test_vosk_streams_partials_and_finishes(vosk_ko: VoskRecognizer) -> None:
    samples, rate = au.read_wav(SHARED / "hotline/dev01.wav")
    session = vosk_ko.start(rate)
    partials = [p for i in range(0, samples.size, 800)
                if (p := session.feed(samples[i : i + 800].tobytes()))]  # fmt: skip
    tr = session.finish()
    print(f"\nvosk-ko: {len(partials)} partials, final {tr.text!r}, "
          f"RTF {tr.decode_seconds / tr.audio_seconds:.2f}")  # fmt: skip
    assert len(partials) >= 3, "partial results must appear while audio streams in"
    assert tr.text and tr.engine == "vosk"
    assert 0.0 < tr.confidence <= 1.0
    assert tr.audio_seconds == pytest.approx(samples.size / rate)


def test_vosk_closes_a_segment_on_silence_like_our_endpointer(vosk_ko: VoskRecognizer) -> None:
    samples, rate = au.read_wav(SHARED / "hotline/dev02.wav")
    audio = np.concatenate([samples, np.zeros(rate * 2, np.int16)])
    session = vosk_ko.start(rate)
    detector = EndpointDetector(EndpointConfig(sample_rate=rate, silence_ms=1000))
    reason = None
    for i in range(0, audio.size, 160):
        chunk = audio[i : i + 160]
        session.feed(chunk.tobytes())
        reason = reason or detector.feed(chunk)
    assert reason is EndReason.SILENCE
    assert session.segments_closed >= 1, "Kaldi's end-pointer did not close the utterance"
    assert session.finish().text


def test_vosk_grammar_limits_the_words(vosk_ko: VoskRecognizer) -> None:
    samples, rate = au.read_wav(SHARED / "hotline/dev05.wav")
    grammar = ["네", "아니요"]
    session = vosk_ko.start(rate, grammar=grammar)
    session.feed(samples.tobytes())
    words = session.finish().text.split()
    assert set(words) <= {*grammar, "[unk]"}


def test_engine_auto_picks_vosk_only_when_a_model_is_installed(
    config: HotlineConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOTLINE_VOSK_MODEL", str(tmp_path / "absent"))
    assert make_recognizer(config).name == "whisper"
    monkeypatch.setenv("HOTLINE_VOSK_MODEL", str(korean_vosk_model_dir()))
    assert make_recognizer(config).name == "vosk"
