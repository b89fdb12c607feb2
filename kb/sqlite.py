"""The knowledge-base store: one SQLite file (WAL), every version of every article kept.

``articles`` holds one row per article: its owning department, the *head* version (the latest
edit, whatever its status) and the *live* version (the last published one, what callers hear).
``versions`` holds each version's content as JSON; ``events`` is the workflow's history (who
proposed, submitted, published, sent back or expired what, when).  Every change runs in one
transaction: it is committed whole or not at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kb.model import (
    Actor,
    Article,
    KbError,
    KbForbidden,
    KbNotFound,
    KbUnavailable,
    Role,
    Status,
    article_from,
)

MAX_ARTICLES = 100_000
MAX_COMMENT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    department TEXT NOT NULL,
    head INTEGER NOT NULL,
    live INTEGER,
    status TEXT NOT NULL CHECK (status IN ('draft', 'in_review', 'published', 'expired'))
);
CREATE INDEX IF NOT EXISTS articles_by_department ON articles (department, status);
CREATE TABLE IF NOT EXISTS versions (
    article_id TEXT NOT NULL REFERENCES articles (id),
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    comment TEXT NOT NULL,
    PRIMARY KEY (article_id, version)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL REFERENCES articles (id),
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    at TEXT NOT NULL,
    comment TEXT NOT NULL
);
"""


class SqliteKbStore:
    """Articles, versions and the review workflow over one SQLite file (``:memory:`` works)."""

    def __init__(
        self,
        path: str | Path,
        *,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._tz = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(self._tz))
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                path = Path(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o640))
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise KbUnavailable(f"knowledge-base database {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                with self._db:
                    return fn(self._db)
            except sqlite3.Error as exc:
                raise KbUnavailable(f"knowledge-base database: {exc}") from exc

    def now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=self._tz)

    def today(self) -> date:
        return self.now().date()

    # ---- reading ---------------------------------------------------------------------
    @staticmethod
    def _article(row: tuple[Any, ...], status: str) -> Article:
        body, version, author, at, comment = row
        a = article_from(json.loads(body))
        return a.with_meta(
            status=Status(status), version=version, updated_by=author, updated_at=at,
            comment=comment,
        )  # fmt: skip

    def _head(self, db: sqlite3.Connection, aid: str) -> tuple[Article, int | None]:
        row = db.execute(
            "SELECT v.body, v.version, v.author, v.at, v.comment, a.status, a.live"
            " FROM articles a JOIN versions v ON v.article_id = a.id AND v.version = a.head"
            " WHERE a.id = ?",
            (aid,),
        ).fetchone()
        if row is None:
            raise KbNotFound(f"no article {aid!r}")
        return self._article(row[:5], row[5]), row[6]

    def get(self, aid: str) -> Article:
        """The head (latest) version of an article, whatever its status."""
        return self._run(lambda db: self._head(db, aid))[0]

    def live(self, aid: str) -> Article | None:
        """The published version callers hear (``None`` if never published or expired)."""
        return next((a for a in self._lives("AND a.id = ?", (aid,))), None)

    def _lives(self, where: str = "", params: Iterable[Any] = ()) -> list[Article]:
        def q(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT v.body, v.version, v.author, v.at, v.comment FROM articles a"
                " JOIN versions v ON v.article_id = a.id AND v.version = a.live"
                f" WHERE a.live IS NOT NULL AND a.status != 'expired' {where} ORDER BY a.id",
                tuple(params),
            ).fetchall()

        return [self._article(r, Status.PUBLISHED) for r in self._run(q)]

    def published(self) -> list[Article]:
        """Every live (published, not expired) version: what search indexes."""
        return self._lives()

    def heads(
        self, *, department: str | None = None, status: Status | None = None
    ) -> list[Article]:
        """Head versions, optionally of one department and/or in one status."""
        sql = (
            "SELECT v.body, v.version, v.author, v.at, v.comment, a.status FROM articles a"
            " JOIN versions v ON v.article_id = a.id AND v.version = a.head WHERE 1=1"
        )
        params: list[Any] = []
        if department is not None:
            sql += " AND a.department = ?"
            params.append(department)
        if status is not None:
            sql += " AND a.status = ?"
            params.append(Status(status).value)
        rows = self._run(lambda db: db.execute(sql + " ORDER BY a.id", params).fetchall())
        return [self._article(r[:5], r[5]) for r in rows]

    def history(self, aid: str) -> list[dict[str, Any]]:
        """The workflow events of an article, oldest first."""

        def q(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            self._head(db, aid)
            return db.execute(
                "SELECT version, action, actor, role, at, comment FROM events"
                " WHERE article_id = ? ORDER BY seq",
                (aid,),
            ).fetchall()

        keys = ("version", "action", "actor", "role", "at", "comment")
        return [dict(zip(keys, r, strict=True)) for r in self._run(q)]

    def version(self, aid: str, version: int) -> Article:
        """One stored version (its status shown as of the article's head/live)."""
        row = self._run(
            lambda db: db.execute(
                "SELECT body, version, author, at, comment FROM versions"
                " WHERE article_id = ? AND version = ?",
                (aid, version),
            ).fetchone()
        )
        if row is None:
            raise KbNotFound(f"no version {version} of article {aid!r}")
        return self._article(row, Status.DRAFT)

    def expired_for(self, actor: Actor) -> list[Article]:
        """Expired articles the actor owns (an admin: all), to renew or retire (第十二条)."""
        dept = None if actor.role == Role.ADMIN else actor.department
        return self.heads(department=dept, status=Status.EXPIRED)

    # ---- the workflow ------------------------------------------------------------------
    def _event(
        self, db: sqlite3.Connection, aid: str, version: int, action: str, actor: Actor,
        comment: str,
    ) -> None:  # fmt: skip
        db.execute(
            "INSERT INTO events (article_id, version, action, actor, role, at, comment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (aid, version, action, actor.name, actor.role.value, self.now().isoformat(), comment),
        )

    def propose(
        self, actor: Actor, data: Mapping[str, Any] | Article, comment: str = ""
    ) -> Article:
        """Save a new draft version of an article (new or existing).

        A department may only propose for itself and only change its own articles."""
        return self.propose_all(actor, [data], comment)[0]

    def propose_all(
        self, actor: Actor, items: Iterable[Mapping[str, Any] | Article], comment: str = ""
    ) -> list[Article]:
        """:meth:`propose` each item in one transaction: all are saved or none (an import)."""
        drafts = [d if isinstance(d, Article) else article_from(d) for d in items]
        comment = _comment(comment)
        for draft in drafts:
            if not actor.may_edit(draft.department):
                raise KbForbidden(f"{actor.name} may not write articles of {draft.department}")
        at = self.now().isoformat()

        def write(db: sqlite3.Connection) -> list[Article]:
            return [self._propose(db, actor, d, comment, at) for d in drafts]

        return self._run(write)

    def _propose(
        self, db: sqlite3.Connection, actor: Actor, draft: Article, comment: str, at: str
    ) -> Article:
        old = db.execute(
            "SELECT department, head FROM articles WHERE id = ?", (draft.id,)
        ).fetchone()
        if old is None:
            (count,) = db.execute("SELECT COUNT(*) FROM articles").fetchone()
            if count >= MAX_ARTICLES:
                raise KbError(f"the knowledge base is full ({MAX_ARTICLES} articles)")
            version = 1
            db.execute(
                "INSERT INTO articles (id, department, head, live, status)"
                " VALUES (?, ?, 1, NULL, 'draft')",
                (draft.id, draft.department),
            )
        else:
            if not actor.may_edit(old[0]):
                raise KbForbidden(f"{actor.name} may not change an article of {old[0]}")
            version = old[1] + 1
            db.execute(
                "UPDATE articles SET department = ?, head = ?, status = 'draft' WHERE id = ?",
                (draft.department, version, draft.id),
            )
        body = json.dumps(draft.content(), ensure_ascii=False)
        db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)",
            (draft.id, version, body, actor.name, at, comment),
        )
        self._event(db, draft.id, version, "proposed", actor, comment)
        return draft.with_meta(
            status=Status.DRAFT, version=version, updated_by=actor.name, updated_at=at,
            comment=comment,
        )  # fmt: skip

    def _move(
        self, actor: Actor, aid: str, allowed: tuple[Status, ...], new: Status, action: str,
        comment: str, version: int | None,
    ) -> Article:  # fmt: skip
        comment = _comment(comment)

        def write(db: sqlite3.Connection) -> Article:
            head, _live = self._head(db, aid)
            if not actor.may_edit(head.department):
                raise KbForbidden(f"{actor.name} may not change an article of {head.department}")
            if version is not None and version != head.version:
                raise KbError(f"article {aid!r} is at version {head.version}, not {version}")
            if head.status not in allowed:
                raise KbError(f"article {aid!r} is {head.status.label}: cannot be {action}")
            live_sql = ", live = head" if new == Status.PUBLISHED else ""
            db.execute(f"UPDATE articles SET status = ?{live_sql} WHERE id = ?", (new.value, aid))
            self._event(db, aid, head.version, action, actor, comment)
            return head.with_meta(status=new)

        return self._run(write)

    def submit(self, actor: Actor, aid: str, comment: str = "") -> Article:
        """Send the draft for review (the owning department or an admin)."""
        return self._move(actor, aid, (Status.DRAFT,), Status.IN_REVIEW, "submitted", comment, None)

    def publish(
        self, actor: Actor, aid: str, version: int | None = None, comment: str = ""
    ) -> Article:
        """An admin publishes the head version (``version``: the one they reviewed)."""
        if actor.role != Role.ADMIN:
            raise KbForbidden("only an admin publishes articles")
        head = self.get(aid)
        if head.valid_until is not None and head.valid_until < self.today():
            raise KbError(f"article {aid!r} expired on {head.valid_until}: renew valid_until")
        allowed = (Status.DRAFT, Status.IN_REVIEW)
        return self._move(actor, aid, allowed, Status.PUBLISHED, "published", comment, version)

    def send_back(self, actor: Actor, aid: str, comment: str) -> Article:
        """An admin returns an article in review to its department, saying why."""
        if actor.role != Role.ADMIN:
            raise KbForbidden("only an admin reviews articles")
        if not comment.strip():
            raise KbError("say why the article is sent back")
        return self._move(actor, aid, (Status.IN_REVIEW,), Status.DRAFT, "sent back", comment, None)

    def sweep_expired(self, actor: Actor, today: date | None = None) -> list[Article]:
        """Mark live articles past ``valid_until`` expired (hidden from callers); returns them."""
        day = today or self.today()
        due = [a for a in self.published() if a.valid_until is not None and a.valid_until < day]
        out = []
        for a in due:

            def write(db: sqlite3.Connection, a: Article = a) -> None:
                db.execute(  # a pending renewal stays the head; the old text leaves callers
                    "UPDATE articles SET status = CASE WHEN head = live THEN 'expired'"
                    " ELSE status END, live = CASE WHEN head = live THEN live END WHERE id = ?",
                    (a.id,),
                )
                self._event(db, a.id, a.version, "expired", actor, f"valid until {a.valid_until}")

            self._run(write)
            out.append(a.with_meta(status=Status.EXPIRED))
        return out


def _comment(comment: Any) -> str:
    if not isinstance(comment, str):
        raise KbError("comment must be text")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise KbError(f"comment is {len(comment)} characters long (at most {MAX_COMMENT})")
    return comment
