"""The recordings index: one SQLite file (0600) holding where each encrypted recording is,
its transcript lines (searchable by words through FTS5 over rjieba's words), QA scores per
call and scorer, and the mover's failures (counted for supervisors).

Methods are synchronous (SQLite); call them from async code with ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY, call_id TEXT NOT NULL, leg TEXT NOT NULL, path TEXT NOT NULL,
    created REAL NOT NULL, duration_s REAL NOT NULL, bytes INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'stored', error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS recordings_by_call ON recordings (call_id);
CREATE INDEX IF NOT EXISTS recordings_by_created ON recordings (created);
CREATE TABLE IF NOT EXISTS lines (
    rec_id TEXT NOT NULL, call_id TEXT NOT NULL, idx INTEGER NOT NULL, speaker TEXT NOT NULL,
    start REAL NOT NULL, end_s REAL NOT NULL, text TEXT NOT NULL, PRIMARY KEY (rec_id, idx));
CREATE VIRTUAL TABLE IF NOT EXISTS lines_fts USING fts5 (
    words, call_id UNINDEXED, rec_id UNINDEXED);
CREATE TABLE IF NOT EXISTS scores (
    call_id TEXT NOT NULL, scorer TEXT NOT NULL, items TEXT NOT NULL, total REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '', at REAL NOT NULL, PRIMARY KEY (call_id, scorer));
CREATE TABLE IF NOT EXISTS failures (at REAL NOT NULL, call_id TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS deletions (at REAL NOT NULL, call_id TEXT NOT NULL, rec_id TEXT);
"""


def words(text: str) -> str:
    """``text`` as space-separated search words (rjieba's search cut, Latin words and
    digits kept, punctuation dropped)."""
    import rjieba

    return " ".join(
        w for w in rjieba.cut_for_search(text) if w.strip() and any(map(str.isalnum, w))
    )


def fts_query(text: str) -> str:
    """An FTS5 query that needs every word of ``text`` (each quoted: no operators)."""
    import rjieba

    parts = [w for w in rjieba.cut(text) if w.strip() and any(map(str.isalnum, w))]
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in parts)


@dataclass(frozen=True)
class Recording:
    id: str
    call_id: str
    leg: str
    path: str
    created: float
    duration_s: float
    bytes: int
    state: str
    error: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "created": self.created,
            "duration_s": self.duration_s,
            "bytes": self.bytes,
            "state": self.state,
        }


@dataclass(frozen=True)
class TLine:
    speaker: str
    start: float
    end: float
    text: str


class RecordingIndex:
    """The index at ``path`` (created 0600 with its folder 0700)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not self.path.exists():
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn())

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ---- recordings ----------------------------------------------------------------------
    def add(self, rec: Recording) -> None:
        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO recordings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec.id, rec.call_id, rec.leg, rec.path, rec.created, rec.duration_s,
                     rec.bytes, rec.state, rec.error),
                )  # fmt: skip

        self._run(tx)

    def of_call(self, call_id: str) -> list[Recording]:
        return self._run(
            lambda db: [
                Recording(*r)
                for r in db.execute(
                    "SELECT * FROM recordings WHERE call_id = ? AND state != 'deleted'"
                    " ORDER BY created",
                    (call_id,),
                )
            ]
        )

    def get(self, rec_id: str) -> Recording | None:
        row = self._run(
            lambda db: db.execute("SELECT * FROM recordings WHERE id = ?", (rec_id,)).fetchone()
        )
        return Recording(*row) if row else None

    def pending_transcripts(self, limit: int = 10) -> list[Recording]:
        return self._run(
            lambda db: [
                Recording(*r)
                for r in db.execute(
                    "SELECT * FROM recordings WHERE state = 'stored' ORDER BY created LIMIT ?",
                    (limit,),
                )
            ]
        )

    def set_state(self, rec_id: str, state: str, error: str = "") -> None:
        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "UPDATE recordings SET state = ?, error = ? WHERE id = ?",
                    (state, error[:200], rec_id),
                )

        self._run(tx)

    def expired(self, before: float) -> list[Recording]:
        return self._run(
            lambda db: [
                Recording(*r)
                for r in db.execute(
                    "SELECT * FROM recordings WHERE created < ? AND state != 'deleted'", (before,)
                )
            ]
        )

    def mark_deleted(self, rec: Recording) -> None:
        """The recording is gone: its row says so, its transcript is dropped, the deletion
        is logged (call id only)."""

        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute("UPDATE recordings SET state = 'deleted' WHERE id = ?", (rec.id,))
                db.execute("DELETE FROM lines WHERE rec_id = ?", (rec.id,))
                db.execute("DELETE FROM lines_fts WHERE rec_id = ?", (rec.id,))
                db.execute(
                    "INSERT INTO deletions VALUES (?, ?, ?)", (self.clock(), rec.call_id, rec.id)
                )

        self._run(tx)

    def deletions(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT at, call_id, rec_id FROM deletions ORDER BY at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [{"at": a, "call_id": c, "recording": r} for a, c, r in rows]

    # ---- failures ------------------------------------------------------------------------
    def failed(self, call_id: str, reason: str) -> None:
        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO failures VALUES (?, ?, ?)", (self.clock(), call_id, reason[:200])
                )

        self._run(tx)

    def failures(self, since: float = 0.0) -> dict[str, Any]:
        def q(db: sqlite3.Connection) -> dict[str, Any]:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM failures WHERE at >= ?", (since,)
            ).fetchone()
            last = db.execute(
                "SELECT at, call_id, reason FROM failures ORDER BY at DESC LIMIT 10"
            ).fetchall()
            return {
                "count": count,
                "last": [{"at": a, "call_id": c, "reason": r} for a, c, r in last],
            }

        return self._run(q)

    # ---- transcripts ---------------------------------------------------------------------
    def set_transcript(self, rec: Recording, lines: Iterable[TLine]) -> None:
        items = list(lines)

        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM lines WHERE rec_id = ?", (rec.id,))
                db.execute("DELETE FROM lines_fts WHERE rec_id = ?", (rec.id,))
                db.executemany(
                    "INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(rec.id, rec.call_id, i, x.speaker, x.start, x.end, x.text)
                     for i, x in enumerate(items)],
                )  # fmt: skip
                text = " ".join(x.text for x in items)
                if text.strip():
                    db.execute(
                        "INSERT INTO lines_fts (words, call_id, rec_id) VALUES (?, ?, ?)",
                        (words(text), rec.call_id, rec.id),
                    )
                db.execute("UPDATE recordings SET state = 'transcribed', error = ''"
                           " WHERE id = ?", (rec.id,))  # fmt: skip

        self._run(tx)

    def transcript(self, call_id: str) -> list[dict[str, Any]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT rec_id, speaker, start, end_s, text FROM lines WHERE call_id = ?"
                " ORDER BY rec_id, start, idx",
                (call_id,),
            ).fetchall()
        )
        return [
            {"recording": r, "speaker": s, "start": a, "end": b, "text": t}
            for r, s, a, b, t in rows
        ]

    def search_words(self, text: str, limit: int = 500) -> list[str]:
        """Call ids whose transcript holds every word of ``text`` (FTS5; a phrase rjieba
        cuts differently from the transcript is found by substring instead)."""
        query = fts_query(text)
        if not query:
            return []

        def q(db: sqlite3.Connection) -> list[str]:
            hits = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT call_id FROM lines_fts WHERE lines_fts MATCH ? LIMIT ?",
                    (query, limit),
                )
            ]
            if hits:
                return hits
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT call_id FROM lines WHERE text LIKE ? ESCAPE '\\' LIMIT ?",
                    (like, limit),
                )
            ]

        return self._run(q)

    def recorded_calls(self, limit: int = 1000) -> list[str]:
        return self._run(
            lambda db: [
                r[0]
                for r in db.execute(
                    "SELECT call_id FROM recordings WHERE state != 'deleted'"
                    " GROUP BY call_id ORDER BY MAX(created) DESC LIMIT ?",
                    (limit,),
                )
            ]
        )

    # ---- scores --------------------------------------------------------------------------
    def save_score(
        self, call_id: str, scorer: str, items: dict[str, Any], total: float, note: str = ""
    ) -> None:
        def tx(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                    (call_id, scorer, json.dumps(items, ensure_ascii=False), total, note,
                     self.clock()),
                )  # fmt: skip

        self._run(tx)

    def scores(self, call_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT call_id, scorer, items, total, note, at FROM scores"
        args: tuple[Any, ...] = ()
        if call_id is not None:
            sql += " WHERE call_id = ?"
            args = (call_id,)
        rows = self._run(lambda db: db.execute(sql + " ORDER BY at", args).fetchall())
        return [
            {"call_id": c, "scorer": s, "items": json.loads(i), "total": t, "note": n, "at": a}
            for c, s, i, t, n, a in rows
        ]
