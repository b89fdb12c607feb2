"""End-of-speech detection on telephone audio (energy VAD with hangover).

Frames of ``frame_ms`` are classed as speech when their level is well above the noise floor
(tracked from the quietest recent frames) and above an absolute minimum.  Speech *starts*
after ``start_ms`` of consecutive speech frames; it *ends* when ``silence_ms`` of silence
follow speech (the hangover keeps short pauses between words inside the utterance).  Two
caps: ``max_s`` of audio in total, and ``no_speech_s`` without any speech starting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class EndReason(StrEnum):
    SILENCE = "silence"
    """Speech was heard, then ``silence_ms`` of silence."""
    MAX_LENGTH = "max_length"
    """The caller was still talking at ``max_s``."""
    NO_SPEECH = "no_speech"
    """Nothing was said within ``no_speech_s``."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    sample_rate: int = 8000
    frame_ms: int = 20
    silence_ms: int = 1500
    max_s: float = 20.0
    no_speech_s: float = 5.0
    start_ms: int = 100
    min_level_db: float = -50.0
    """Frames quieter than this (dBFS) are never speech."""
    above_noise_db: float = 12.0
    """A speech frame is this much louder than the noise floor."""

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.frame_ms <= 0:
            raise ValueError("sample_rate and frame_ms must be positive")
        if self.silence_ms < self.frame_ms or self.max_s <= 0 or self.no_speech_s <= 0:
            raise ValueError("silence_ms ≥ frame_ms, max_s > 0 and no_speech_s > 0 required")


class EndpointDetector:
    """Feed int16 samples as they arrive; :meth:`feed` returns an :class:`EndReason` once."""

    def __init__(self, config: EndpointConfig | None = None) -> None:
        self.config = c = config or EndpointConfig()
        self._frame = c.sample_rate * c.frame_ms // 1000
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = 0
        self._run_speech = 0
        self._run_silence = 0
        self._noise_db = c.min_level_db
        self.speech_started_at: float | None = None
        """Seconds into the stream where speech began (``None`` until it does)."""
        self.speech_ended_at: float | None = None
        """Seconds into the stream where the last speech frame ended."""
        self.reason: EndReason | None = None

    @property
    def seconds(self) -> float:
        return self._frames * self.config.frame_ms / 1000

    @property
    def in_speech(self) -> bool:
        return self.speech_started_at is not None and self._run_silence == 0

    @property
    def silence_run_ms(self) -> int:
        """How long the current silence has lasted (0 while speech goes on)."""
        return self._run_silence * self.config.frame_ms

    def feed(self, samples: np.ndarray) -> EndReason | None:
        """Consume samples; return the end reason the first time the utterance ends."""
        if self.reason is not None:
            return None
        c = self.config
        buf = np.concatenate((self._pending, samples)) if self._pending.size else samples
        n = buf.size // self._frame
        self._pending = buf[n * self._frame :].copy()
        if n == 0:
            return None
        frames = buf[: n * self._frame].reshape(n, self._frame).astype(np.float32)
        rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
        levels = 20.0 * np.log10(np.maximum(rms, 1e-7))
        start_frames = max(1, c.start_ms // c.frame_ms)
        silence_frames = c.silence_ms // c.frame_ms
        for level in levels:
            self._frames += 1
            self._track_noise(float(level))
            is_speech = level > max(c.min_level_db, self._noise_db + c.above_noise_db)
            if is_speech:
                self._run_speech += 1
                self._run_silence = 0
                if self.speech_started_at is None and self._run_speech >= start_frames:
                    self.speech_started_at = (self._frames - start_frames) * c.frame_ms / 1000
                if self.speech_started_at is not None:
                    self.speech_ended_at = self.seconds
            else:
                self._run_speech = 0
                if self.speech_started_at is not None:
                    self._run_silence += 1
            if self.speech_started_at is not None and self._run_silence >= silence_frames:
                self.reason = EndReason.SILENCE
            elif self.seconds >= c.max_s:
                self.reason = (
                    EndReason.MAX_LENGTH if self.speech_started_at is not None
                    else EndReason.NO_SPEECH
                )  # fmt: skip
            elif self.speech_started_at is None and self.seconds >= c.no_speech_s:
                self.reason = EndReason.NO_SPEECH
            if self.reason is not None:
                return self.reason
        return None

    def _track_noise(self, level: float) -> None:
        """Noise floor: follows quieter frames quickly, rises by only 1 dB a second, so a
        long stretch of speech does not become the floor."""
        if level < self._noise_db:
            self._noise_db = 0.5 * self._noise_db + 0.5 * level
        else:
            self._noise_db += self.config.frame_ms / 1000
