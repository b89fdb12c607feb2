"""End-of-speech detection on 8 kHz telephone audio (synthetic speech-like bursts)."""

from __future__ import annotations

import numpy as np
import pytest

from speech.endpoint import EndpointConfig, EndpointDetector, EndReason

RATE = 8000
RNG = np.random.default_rng(7)


def silence(s: float, noise_db: float | None = None) -> np.ndarray:
    if noise_db is None:
        return np.zeros(int(RATE * s), np.int16)
    amp = 32768 * 10 ** (noise_db / 20)
    return (RNG.standard_normal(int(RATE * s)) * amp).astype(np.int16)


def talk(s: float, level_db: float = -20.0) -> np.ndarray:
    """A voiced, syllable-modulated tone: loud like a caller on a phone line."""
    t = np.arange(int(RATE * s)) / RATE
    envelope = 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * 4 * t))
    wave = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 720 * t)
    amp = 32768 * 10 ** (level_db / 20)
    return (wave * envelope * amp / 1.2).astype(np.int16)


def run(detector: EndpointDetector, audio: np.ndarray, step: int = 160) -> EndReason | None:
    for i in range(0, audio.size, step):
        reason = detector.feed(audio[i : i + step])
        if reason is not None:
            return reason
    return None


def test_caller_talks_then_stops_ends_after_the_silence_window() -> None:
    d = EndpointDetector(EndpointConfig(silence_ms=800))
    reason = run(d, np.concatenate([silence(0.5), talk(2.0), silence(3.0)]))
    assert reason is EndReason.SILENCE
    assert d.speech_started_at == pytest.approx(0.5, abs=0.1)
    assert d.speech_ended_at == pytest.approx(2.5, abs=0.1)
    assert d.seconds == pytest.approx(2.5 + 0.8, abs=0.1)


def test_a_short_pause_between_phrases_does_not_end_the_utterance() -> None:
    d = EndpointDetector(EndpointConfig(silence_ms=800))
    audio = np.concatenate([talk(1.0), silence(0.4), talk(1.0), silence(2.0)])
    assert run(d, audio) is EndReason.SILENCE
    assert d.speech_ended_at == pytest.approx(2.4, abs=0.1)


def test_speech_over_line_noise_is_found_and_ends() -> None:
    d = EndpointDetector(EndpointConfig(silence_ms=700))
    noise = silence(6.0, noise_db=-42)
    audio = noise.copy()
    audio[8000:24000] += talk(2.0, level_db=-18)
    assert run(d, audio) is EndReason.SILENCE
    assert d.speech_started_at == pytest.approx(1.0, abs=0.15)
    assert d.speech_ended_at == pytest.approx(3.0, abs=0.15)


def test_caller_who_never_stops_is_cut_at_max_length() -> None:
    d = EndpointDetector(EndpointConfig(max_s=3.0))
    assert run(d, talk(10.0)) is EndReason.MAX_LENGTH
    assert d.seconds == pytest.approx(3.0, abs=0.05)


def test_caller_who_says_nothing_gives_up_after_no_speech_window() -> None:
    d = EndpointDetector(EndpointConfig(no_speech_s=4.0))
    assert run(d, silence(10.0, noise_db=-45)) is EndReason.NO_SPEECH
    assert d.seconds == pytest.approx(4.0, abs=0.05)
    assert d.speech_started_at is None


def test_a_click_is_not_speech() -> None:
    d = EndpointDetector(EndpointConfig(no_speech_s=2.0))
    audio = silence(3.0)
    audio[4000:4080] = 20000
    assert run(d, audio) is EndReason.NO_SPEECH


def test_reports_the_end_once_and_accepts_odd_chunk_sizes() -> None:
    d = EndpointDetector(EndpointConfig(silence_ms=500))
    assert run(d, np.concatenate([talk(1.0), silence(2.0)]), step=37) is EndReason.SILENCE
    assert d.feed(talk(1.0)) is None


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        EndpointConfig(silence_ms=5)
    with pytest.raises(ValueError):
        EndpointConfig(max_s=0)
