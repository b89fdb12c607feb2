"""An incident notice (第十三条) and the validation of untrusted input into one (pure)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_TEXT = 300
"""Characters of a notice (about a minute of speech)."""
MAX_TITLE = 40
MAX_WINDOW = timedelta(days=90)
MAX_SEATS = 50
ID_RE = re.compile(r"^n[0-9a-f]{12}$")
UPLOAD_RE = re.compile(r"^up-[a-z0-9][a-z0-9_-]{0,40}$")
"""An uploaded prompt's name (``prompts.py``)."""


class NoticeError(ValueError):
    """Input that cannot become a notice (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice: what is said, when (aware UTC times, ``start <= t < end``), to whom
    (``seats`` empty: every caller at the start of the IVR; else callers choosing one of
    these seats) and, optionally, the district it concerns."""

    id: str
    title: str
    text: str
    start: datetime
    end: datetime
    seats: tuple[str, ...] = ()
    district: str = ""
    recording: str = ""
    """An uploaded prompt (``up-…``) played instead of the synthesised text."""
    created_by: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def voice_name(self) -> str:
        """The synthesised prompt's name: the text's hash (same text, same file)."""
        return "notice-" + hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "text": self.text,
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "seats": list(self.seats), "district": self.district, "recording": self.recording,
            "created_by": self.created_by, "created_at": self.created_at.isoformat(),
        }  # fmt: skip


def clean(value: object, what: str, limit: int, *, required: bool = True) -> str:
    """Text without control characters, stripped, at most ``limit`` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise NoticeError(f"{what} must be text")
    text = value.strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in text):
        raise NoticeError(f"{what} contains control characters")
    if required and not text:
        raise NoticeError(f"{what} is required")
    if len(text) > limit:
        raise NoticeError(f"{what} is longer than {limit} characters")
    return text


def aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise NoticeError(f"{what} needs a timezone (e.g. 2026-10-01T08:00:00+08:00)")
    return value.astimezone(UTC)


def notice_from(
    data: Mapping[str, Any],
    *,
    seats: Iterable[str],
    districts: Iterable[str],
    uploads: Iterable[str] = (),
    now: datetime | None = None,
    notice_id: str,
    created_by: str,
) -> Notice:
    """Validate an admin's body (already typed by the API) into a :class:`Notice`: known
    seats and district, start before end, a window of at most :data:`MAX_WINDOW` that has
    not ended yet, a recording that was uploaded."""
    now = now or datetime.now(UTC)
    start = aware(data["start"], "start")
    end = aware(data["end"], "end")
    if end <= start:
        raise NoticeError("end must be after start")
    if end - start > MAX_WINDOW:
        raise NoticeError(f"a notice lasts at most {MAX_WINDOW.days} days")
    if end <= now:
        raise NoticeError("end is in the past")
    known = set(seats)
    chosen = tuple(dict.fromkeys(data.get("seats") or ()))
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise NoticeError(f"unknown seat {unknown[0]!r}")
    district = clean(data.get("district"), "district", 64, required=False)
    if district and district not in set(districts):
        raise NoticeError(f"unknown district {district!r}")
    recording = clean(data.get("recording"), "recording", 48, required=False)
    if recording and (not UPLOAD_RE.fullmatch(recording) or recording not in set(uploads)):
        raise NoticeError(f"no uploaded prompt {recording!r}")
    return Notice(
        id=notice_id,
        title=clean(data.get("title"), "title", MAX_TITLE),
        text=clean(data.get("text"), "text", MAX_TEXT),
        start=start,
        end=end,
        seats=chosen,
        district=district,
        recording=recording,
        created_by=created_by,
        created_at=now,
    )
