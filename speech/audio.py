"""Audio conversion: telephone audio (8 kHz slin16 / G.711) ↔ 16 kHz float for recognisers.

Everything is vectorised numpy; resampling uses soxr (high quality, fast).  WAV files are
read with the stdlib :mod:`wave` module; other containers/sample widths go through pydub.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import soxr

TELEPHONE_RATE = 8000
MODEL_RATE = 16000


class AudioError(ValueError):
    """Audio that cannot be decoded (wrong length, unknown format, unreadable file)."""


def slin16_to_int16(data: bytes) -> np.ndarray:
    """Decode signed-linear 16-bit little-endian PCM (Asterisk ``slin``)."""
    if len(data) % 2:
        raise AudioError(f"slin16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_ULAW = _ulaw_table()
_ALAW = _alaw_table()


def ulaw_to_int16(data: bytes) -> np.ndarray:
    """Decode G.711 µ-law bytes (one sample per byte) by table look-up."""
    return _ULAW[np.frombuffer(data, dtype=np.uint8)]


def alaw_to_int16(data: bytes) -> np.ndarray:
    """Decode G.711 A-law bytes (one sample per byte) by table look-up."""
    return _ALAW[np.frombuffer(data, dtype=np.uint8)]


def decode(data: bytes, codec: str) -> np.ndarray:
    """Decode ``slin``/``slin16``, ``ulaw`` or ``alaw`` bytes to int16 samples."""
    if codec in ("slin", "slin16"):
        return slin16_to_int16(data)
    if codec == "ulaw":
        return ulaw_to_int16(data)
    if codec == "alaw":
        return alaw_to_int16(data)
    raise AudioError(f"unknown codec {codec!r} (expected slin, ulaw or alaw)")


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 → float32 in [-1, 1)."""
    return samples.astype(np.float32) / 32768.0


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] → int16, clipped."""
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a mono signal with soxr; int16 in → int16 out, float in → float32 out."""
    if rate_in == rate_out or samples.size == 0:
        return samples
    if samples.dtype == np.int16:
        return soxr.resample(samples, rate_in, rate_out)
    return soxr.resample(samples.astype(np.float32), rate_in, rate_out)


def to_model_input(samples: np.ndarray, rate: int) -> np.ndarray:
    """Any mono int16/float signal → 16 kHz float32, what Whisper expects."""
    x = int16_to_float(samples) if samples.dtype == np.int16 else samples.astype(np.float32)
    return resample(x, rate, MODEL_RATE)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono int16 samples and its sample rate.

    16-bit PCM mono is read with :mod:`wave`; anything else (stereo, 8/24/32-bit, other
    containers ffmpeg knows) is decoded by pydub and mixed down to mono.
    """
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            if w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getcomptype() == "NONE":
                return slin16_to_int16(w.readframes(w.getnframes())).copy(), w.getframerate()
    except FileNotFoundError:
        raise AudioError(f"{p}: no such file") from None
    except (wave.Error, EOFError):
        pass
    try:
        from pydub import AudioSegment

        seg = AudioSegment.from_file(str(p)).set_channels(1).set_sample_width(2)
    except Exception as exc:  # pydub raises many kinds; say which file failed
        raise AudioError(f"{p}: cannot decode audio ({exc})") from None
    return np.array(seg.get_array_of_samples(), dtype=np.int16), seg.frame_rate


def write_wav(path: str | Path | io.BytesIO, samples: np.ndarray, rate: int) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV file (a path or a binary buffer)."""
    data = samples if samples.dtype == np.int16 else float_to_int16(samples)
    target = path if isinstance(path, io.BytesIO) else str(path)
    with wave.open(target, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """The WAV file for ``samples`` as bytes."""
    buf = io.BytesIO()
    write_wav(buf, samples, rate)
    return buf.getvalue()
