"""One-shot recognition of a file, for tools (``hotline speech analyze FILE.wav``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from speech.recognizers import Recognizer, Transcript, make_recognizer, transcribe_file

if TYPE_CHECKING:
    from hotline.config import HotlineConfig

_cache: dict[int, Recognizer] = {}


def transcribe(path: str | Path, config: HotlineConfig) -> Transcript:
    """Recognise a WAV file with the configured engine (model loaded once per config)."""
    rec = _cache.get(id(config))
    if rec is None:
        rec = _cache[id(config)] = make_recognizer(config)
    return transcribe_file(rec, path)
