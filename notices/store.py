"""Notices in one SQLite file (mode 0600), outside the YAML config: a notice takes effect
when it is stored, without a config apply.  Reads filter by time (``start <= now < end``),
so a notice expires by itself: no sweep runs, nothing is deleted (ended notices stay as a
record)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from notices.model import Notice

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_end ON notices (end_ts);
"""


class NoticeStoreError(RuntimeError):
    """The notice database cannot be used."""


def _to_row(n: Notice) -> tuple[str, float, float, str]:
    return n.id, n.start.timestamp(), n.end.timestamp(), json.dumps(n.to_json())


def _from_body(body: str) -> Notice:
    d = json.loads(body)
    return Notice(
        id=d["id"], title=d["title"], text=d["text"],
        start=datetime.fromisoformat(d["start"]), end=datetime.fromisoformat(d["end"]),
        seats=tuple(d["seats"]), district=d["district"], recording=d.get("recording", ""),
        created_by=d["created_by"], created_at=datetime.fromisoformat(d["created_at"]),
    )  # fmt: skip


class NoticeStore:
    """Add, list, end early; ``active(at)`` is what the IVR reads at every call."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(p, check_same_thread=False, timeout=2)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise NoticeStoreError(f"notice database {p}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                with self._db:
                    return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise NoticeStoreError(f"notice database: {exc}") from exc

    def add(self, notice: Notice) -> Notice:
        self._run("INSERT INTO notices (id, start_ts, end_ts, body) VALUES (?, ?, ?, ?)",
                  _to_row(notice))  # fmt: skip
        return notice

    def get(self, notice_id: str) -> Notice | None:
        rows = self._run("SELECT body FROM notices WHERE id = ?", (notice_id,))
        return _from_body(rows[0][0]) if rows else None

    def all(self, limit: int = 200) -> list[Notice]:
        """Newest first (ended ones too)."""
        rows = self._run("SELECT body FROM notices ORDER BY start_ts DESC LIMIT ?", (limit,))
        return [_from_body(r[0]) for r in rows]

    def active(self, at: datetime) -> list[Notice]:
        """Notices in their window at ``at``, oldest start first."""
        ts = at.timestamp()
        rows = self._run(
            "SELECT body FROM notices WHERE start_ts <= ? AND end_ts > ? ORDER BY start_ts",
            (ts, ts),
        )
        return [_from_body(r[0]) for r in rows]

    def not_ended(self, at: datetime) -> list[Notice]:
        """Active and future notices (their audio is kept)."""
        rows = self._run("SELECT body FROM notices WHERE end_ts > ?", (at.timestamp(),))
        return [_from_body(r[0]) for r in rows]

    def end(self, notice_id: str, at: datetime | None = None) -> Notice | None:
        """End a notice now (it stays as a record); ``None`` if there is no such notice."""
        n = self.get(notice_id)
        if n is None:
            return None
        at = (at or datetime.now(UTC)).astimezone(UTC)
        if n.end <= at:
            return n  # already over: its end stays where it was
        start = min(n.start, at)
        ended = replace(n, start=start, end=at)
        self._run("UPDATE notices SET start_ts = ?, end_ts = ?, body = ? WHERE id = ?",
                  (*_to_row(ended)[1:], notice_id))  # fmt: skip
        return ended
