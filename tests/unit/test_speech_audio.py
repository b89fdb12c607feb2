"""Audio conversion: G.711, slin, resampling and WAV files."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from speech import audio as au

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib's C reference for G.711 (removed in 3.13)


def test_ulaw_and_alaw_decode_like_the_stdlib_reference_for_every_byte() -> None:
    every = bytes(range(256))
    assert (
        au.ulaw_to_int16(every).tolist()
        == np.frombuffer(audioop.ulaw2lin(every, 2), "<i2").tolist()
    )
    assert (
        au.alaw_to_int16(every).tolist()
        == np.frombuffer(audioop.alaw2lin(every, 2), "<i2").tolist()
    )


def test_decode_by_codec_name_and_unknown_codec_is_refused() -> None:
    pcm = np.array([0, 1000, -1000, 32767, -32768], np.int16)
    assert au.decode(pcm.astype("<i2").tobytes(), "slin").tolist() == pcm.tolist()
    with pytest.raises(au.AudioError, match="unknown codec 'g729'"):
        au.decode(b"\x00\x00", "g729")


def test_odd_slin_payload_is_a_clear_error() -> None:
    with pytest.raises(au.AudioError, match="even number of bytes"):
        au.slin16_to_int16(b"\x00\x01\x02")


def test_telephone_tone_keeps_its_pitch_when_upsampled_to_16k() -> None:
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    up = au.to_model_input(tone, 8000)
    assert up.dtype == np.float32 and up.size == 16000
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * 16000 / up.size - 440) < 2
    assert 0.45 < np.max(np.abs(up[100:-100])) < 0.55


def test_wav_round_trip(tmp_path: Path) -> None:
    x = (np.random.default_rng(1).standard_normal(4000) * 3000).astype(np.int16)
    au.write_wav(tmp_path / "a.wav", x, 8000)
    y, rate = au.read_wav(tmp_path / "a.wav")
    assert rate == 8000 and y.tolist() == x.tolist()
    assert au.wav_bytes(x, 8000)[:4] == b"RIFF"


def test_eight_bit_stereo_wav_is_read_through_pydub(tmp_path: Path) -> None:
    path = tmp_path / "stereo8.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128, 128, 200, 200, 56, 56] * 100))
    y, rate = au.read_wav(path)
    assert rate == 8000 and y.size == 300 and y.dtype == np.int16
    assert y[1] > 10000 and y[2] < -10000


def test_missing_or_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(au.AudioError, match="no such file"):
        au.read_wav(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(au.AudioError, match=r"junk\.wav"):
        au.read_wav(junk)
