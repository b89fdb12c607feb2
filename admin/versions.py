"""Every applied version of the hotline config, who applied it, when and why (SQLite, 0600).

A version is the full YAML text (it holds the AMI secret and the Redis password: the file is
for root only).  Exactly one version *runs*.  An apply names the version it was based on; it
is refused with :class:`StaleBase` when another apply landed since (no lost update).  The
check and the write happen in one ``BEGIN IMMEDIATE`` transaction that is held while the new
config is rendered and reloaded (:meth:`VersionStore.applying`), so two admins — in the
console, on the command line, in two processes — cannot both pass the check.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COMMENT_MAX = 500
WHO_MAX = 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    who TEXT NOT NULL,
    comment TEXT NOT NULL,
    kind TEXT NOT NULL,          -- adopted | apply | rollback
    based_on INTEGER,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS running (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL REFERENCES versions(id)
);
"""


class StaleBase(Exception):
    """The apply was based on a version that no longer runs (HTTP 409)."""

    def __init__(self, base: int | None, running: int | None) -> None:
        self.base = base
        self.running = running
        super().__init__(
            f"version {running} runs now, this edit was based on version {base}: "
            "reload the running version, redo the change and apply again"
        )


class NoSuchVersion(KeyError):
    """No version with this number (HTTP 404)."""


@dataclass(frozen=True)
class Version:
    id: int
    created: float
    who: str
    comment: str
    kind: str
    based_on: int | None
    sha256: str
    text: str

    def summary(self) -> dict[str, object]:
        """Everything but the text."""
        return {
            "id": self.id,
            "created": self.created,
            "who": self.who,
            "comment": self.comment,
            "kind": self.kind,
            "based_on": self.based_on,
            "sha256": self.sha256,
        }


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _clean(value: str, limit: int) -> str:
    """A one-line label: control characters become spaces, at most ``limit`` characters."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)[:limit].strip()


class VersionStore:
    """Config versions in ``path`` (created 0600, its folder 0700).  One short-lived
    connection per operation: safe from threads and from several processes."""

    def __init__(self, path: str | Path, clock: object = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            yield db
        finally:
            db.close()

    @staticmethod
    def _row(row: tuple) -> Version:
        return Version(*row)

    _COLUMNS = "id, created, who, comment, kind, based_on, sha256, text"

    def _running(self, db: sqlite3.Connection) -> Version | None:
        row = db.execute(
            f"SELECT {self._COLUMNS} FROM versions WHERE id = (SELECT version FROM running)"
        ).fetchone()
        return self._row(row) if row else None

    def running(self) -> Version | None:
        """The version that runs (``None`` before the first one was recorded)."""
        with self._connect() as db:
            return self._running(db)

    def get(self, version: int) -> Version:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {self._COLUMNS} FROM versions WHERE id = ?", (version,)
            ).fetchone()
        if row is None:
            raise NoSuchVersion(version)
        return self._row(row)

    def history(self, limit: int = 100) -> list[Version]:
        """The newest ``limit`` versions, newest first."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {self._COLUMNS} FROM versions ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._row(r) for r in rows]

    def adopt(self, text: str, who: str = "system", comment: str = "") -> Version:
        """Record ``text`` (the file found on disk) as running when it differs from the
        running version (first use, or an edit by hand and ``hotline reload``)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._running(db)
                if now is not None and now.sha256 == digest(text):
                    db.execute("COMMIT")
                    return now
                why = comment or ("first version" if now is None else "found on disk")
                version = self._insert(db, text, who, why, "adopted", now.id if now else None)
                db.execute("COMMIT")
                return version
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @contextmanager
    def applying(self, base: int | None) -> Iterator[Applying]:
        """Hold the store while a new version is put in place: yields an :class:`Applying`
        (the running version, and ``record`` for the new one), or raises
        :class:`StaleBase` when ``base`` is not the running version.  An exception in the
        block records nothing."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._running(db)
                running_id = now.id if now else None
                if base != running_id:
                    raise StaleBase(base, running_id)
                yield Applying(self, db, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _insert(
        self,
        db: sqlite3.Connection,
        text: str,
        who: str,
        comment: str,
        kind: str,
        based: int | None,
    ) -> Version:
        created = float(self.clock())  # type: ignore[operator]
        who, comment = _clean(who, WHO_MAX) or "?", _clean(comment, COMMENT_MAX)
        cur = db.execute(
            "INSERT INTO versions (created, who, comment, kind, based_on, sha256, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (created, who, comment, kind, based, digest(text), text),
        )
        vid = int(cur.lastrowid or 0)
        db.execute("INSERT OR REPLACE INTO running (one, version) VALUES (1, ?)", (vid,))
        return Version(vid, created, who, comment, kind, based, digest(text), text)


class Applying:
    """One apply in progress (from :meth:`VersionStore.applying`)."""

    def __init__(self, store: VersionStore, db: sqlite3.Connection, running: Version | None):
        self._store = store
        self._db = db
        self.running = running
        self.recorded: Version | None = None

    def record(self, text: str, who: str, comment: str, kind: str = "apply") -> Version:
        """The new running version (committed when the ``applying`` block ends)."""
        based = self.running.id if self.running else None
        self.recorded = self._store._insert(self._db, text, who, comment, kind, based)
        return self.recorded
