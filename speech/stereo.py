"""Two-channel call recordings (issue 11): the caller and the agent side by side.

Asterisk's MixMonitor writes one mono WAV per direction (``r()``: what the agent's phone
sent, ``t()``: what it was sent, i.e. the caller).  :func:`stereo_wav` joins them into one
16-bit stereo WAV (left: caller, right: agent); :func:`split` reads it back;
:func:`peaks` is the waveform the player draws; :func:`speech_spans` finds the stretches of
speech on one channel and :func:`transcribe_channel` turns them into timed lines.
"""

from __future__ import annotations

import io
import itertools
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech import audio as au

CHANNELS = ("caller", "agent")
"""Left and right channel of a stored recording."""
FRAME_S = 0.02
SPAN_MIN_S = 0.3
"""Shorter bursts (clicks, breaths) are not lines."""
SPAN_GAP_S = 0.6
"""A pause this long ends a line."""
SPAN_MAX_S = 25.0
"""Longer speech is cut (Whisper's window is 30 s)."""


class StereoError(ValueError):
    """Not a recording this module can read or join."""


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    try:
        return au.read_wav(path)
    except au.AudioError as exc:
        raise StereoError(str(exc)) from None


def stereo_wav(caller: str | Path | None, agent: str | Path | None) -> bytes:
    """One stereo WAV (left caller, right agent) from two mono WAVs of one rate; a missing
    side (``None``) is silence.  The shorter side is padded with silence at its end."""
    sides = [_read_mono(Path(p)) if p is not None else None for p in (caller, agent)]
    rates = {s[1] for s in sides if s is not None}
    if not rates:
        raise StereoError("no side to record")
    if len(rates) > 1:
        raise StereoError(f"the two sides have different sample rates: {sorted(rates)}")
    rate = rates.pop()
    n = max(s[0].size for s in sides if s is not None)
    out = np.zeros((n, 2), dtype="<i2")
    for i, side in enumerate(sides):
        if side is not None:
            out[: side[0].size, i] = side[0]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(out.tobytes())
    return buf.getvalue()


def split(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """``(caller, agent, rate)`` of a stereo WAV made by :func:`stereo_wav` (int16 each)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getnchannels() != 2 or w.getsampwidth() != 2:
                raise StereoError("not a 16-bit stereo WAV")
            rate = w.getframerate()
            frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise StereoError(f"not a WAV: {exc}") from None
    pairs = frames[: frames.size - frames.size % 2].reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy(), rate


def rms(samples: np.ndarray) -> float:
    """Root mean square in int16 units (0 for silence)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def peaks(data: bytes, buckets: int = 600) -> dict[str, object]:
    """The waveform: per bucket the peak of each channel in 0..1, and the duration."""
    caller, agent, rate = split(data)
    n = max(caller.size, 1)
    buckets = max(1, min(buckets, n))
    edges = np.linspace(0, caller.size, buckets + 1).astype(int)
    out: dict[str, object] = {"duration_s": round(caller.size / rate, 3), "rate": rate}
    for name, ch in zip(CHANNELS, (caller, agent), strict=True):
        mags = np.abs(ch.astype(np.int32))
        out[name] = [
            round(float(mags[a:b].max()) / 32768.0, 3) if b > a else 0.0
            for a, b in itertools.pairwise(edges)
        ]
    return out


def speech_spans(
    samples: np.ndarray, rate: int, floor: float | None = None
) -> list[tuple[float, float]]:
    """Where someone speaks on one channel: ``[(start_s, end_s), …]`` by frame energy
    against a floor (default: a tenth of the loud frames' level, at least -45 dBFS)."""
    frame = max(1, int(rate * FRAME_S))
    count = samples.size // frame
    if count == 0:
        return []
    energy = np.sqrt(
        np.mean(samples[: count * frame].astype(np.float64).reshape(count, frame) ** 2, axis=1)
    )
    if floor is None:
        loud = np.percentile(energy, 95)
        floor = max(loud / 10.0, 32768.0 * 10 ** (-45 / 20))
    active = energy > floor
    spans: list[tuple[float, float]] = []
    start: int | None = None
    quiet = 0
    gap = int(SPAN_GAP_S / FRAME_S)
    for i, on in enumerate(active):
        if on:
            if start is None:
                start = i
            quiet = 0
            if (i - start) * FRAME_S >= SPAN_MAX_S:
                spans.append((start * FRAME_S, (i + 1) * FRAME_S))
                start = None
        elif start is not None:
            quiet += 1
            if quiet >= gap:
                spans.append((start * FRAME_S, (i - quiet + 1) * FRAME_S))
                start, quiet = None, 0
    if start is not None:
        spans.append((start * FRAME_S, (count - quiet) * FRAME_S))
    return [(round(a, 2), round(b, 2)) for a, b in spans if b - a >= SPAN_MIN_S]


@dataclass(frozen=True, slots=True)
class Line:
    speaker: str
    start: float
    end: float
    text: str


Decoder = Callable[[np.ndarray], str]
"""16 kHz float audio of one span → its text."""


def transcribe_channel(
    samples: np.ndarray, rate: int, speaker: str, decode: Decoder, pad_s: float = 0.15
) -> list[Line]:
    """One channel's timed lines: each span of speech decoded on its own."""
    lines = []
    for start, end in speech_spans(samples, rate):
        a = max(0, int((start - pad_s) * rate))
        b = min(samples.size, int((end + pad_s) * rate))
        text = decode(au.to_model_input(samples[a:b], rate)).strip()
        if text:
            lines.append(Line(speaker, start, end, text))
    return lines


def transcribe_stereo(data: bytes, decode: Decoder) -> list[Line]:
    """Both channels' lines, in time order."""
    caller, agent, rate = split(data)
    lines = transcribe_channel(caller, rate, "caller", decode)
    lines += transcribe_channel(agent, rate, "agent", decode)
    return sorted(lines, key=lambda line: (line.start, line.speaker))


def whisper_decoder(recognizer: object) -> Decoder:
    """A :data:`Decoder` on a :class:`speech.recognizers.WhisperRecognizer` (or any
    recogniser with ``decode(audio16k) -> (text, logprob)``)."""

    def decode(audio16k: np.ndarray) -> str:
        text, _ = recognizer.decode(audio16k)  # type: ignore[attr-defined]
        return text

    return decode
