"""The default ticket store: one SQLite file (WAL), stdlib ``sqlite3`` run in a worker thread.

Caller numbers (第二十条): each row keeps ``caller_hash`` (HMAC, indexed, for
:meth:`open_demands`) and ``caller_enc`` (Fernet, for calling the 诉求人 back, 第十七条); the
number itself is never written in clear.  See :mod:`hotline.privacy`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hotline.call import decode_message
from hotline.privacy import CallerKey, normalize
from tickets.model import (
    Correction,
    Draft,
    Status,
    Ticket,
    TicketError,
    TicketNotFound,
    TicketStoreUnavailable,
    check_correction,
    check_draft_for_ticket,
    check_transition,
)

DONE_WINDOW_DAYS = 30
"""Done tickets stay in :meth:`open_demands` this long (the caller may ask for the result)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    caller_hash TEXT NOT NULL,
    caller_enc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'in_progress', 'done')),
    status_at TEXT NOT NULL,
    feedback_due TEXT NOT NULL,
    seat TEXT NOT NULL,
    department TEXT NOT NULL,
    summary TEXT NOT NULL,
    call_id TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_caller ON tickets (caller_hash, seq);
CREATE TABLE IF NOT EXISTS status_history (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    status TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drafts (
    call_id TEXT PRIMARY KEY,
    original TEXT NOT NULL,
    draft TEXT NOT NULL,
    caller_hash TEXT,
    caller_enc TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL REFERENCES drafts (call_id),
    field TEXT NOT NULL,
    old TEXT,
    new TEXT,
    who TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class SqliteTicketStore:
    """:class:`tickets.model.TicketStore` over one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        key: CallerKey,
        *,
        feedback_days: int = 15,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self._key = key
        self._feedback_days = feedback_days
        self._tz = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(self._tz))
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # 0600 before SQLite opens it: -wal/-shm inherit it
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise TicketStoreUnavailable(f"ticket database {self.path}: {exc}") from exc

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> SqliteTicketStore:
        """The store named by ``config.tickets`` (a :class:`hotline.config.HotlineConfig`)."""
        t = config.tickets
        return cls(
            t.path,
            CallerKey.from_file(t.key_file),
            feedback_days=t.feedback_days,
            timezone=config.business_hours.timezone,
            **kwargs,
        )

    async def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def work() -> Any:
            with self._lock:
                try:
                    with self._db:  # one transaction: committed, or rolled back on error
                        return fn(self._db)
                except sqlite3.Error as exc:
                    raise TicketStoreUnavailable(f"ticket database: {exc}") from exc

        return await asyncio.to_thread(work)

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=self._tz)

    # ---- tickets ------------------------------------------------------------------------
    async def open_demands(self, caller: str) -> list[Ticket]:
        n = normalize(caller)
        if n is None:
            return []
        h = self._key.hash(n)
        since = (self._now() - timedelta(days=DONE_WINDOW_DAYS)).isoformat()

        def q(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT id, caller_enc, created_at, status, feedback_due, seat, department,"
                " summary, call_id FROM tickets WHERE caller_hash = ?"
                " AND (status != 'done' OR status_at >= ?) ORDER BY seq DESC",
                (h, since),
            ).fetchall()

        return [self._ticket(r) for r in await self._run(q)]

    async def create(self, draft: Mapping[str, Any]) -> Ticket:
        check_draft_for_ticket(draft)
        n = normalize(str(draft["caller"]))
        if n is None:
            raise TicketError(f"a ticket needs a caller number, not {draft['caller']!r}")
        now = self._now()
        try:
            days = int(draft.get("feedback_days", self._feedback_days))
        except (TypeError, ValueError):
            raise TicketError("feedback_days must be a whole number of days") from None
        if not 1 <= days <= 365:
            raise TicketError("feedback_days must be 1..365")
        summary = str(draft.get("summary") or draft.get("transcript")).strip()
        fields = {k: v for k, v in draft.items() if k != "caller"}
        try:
            fields_json = json.dumps(fields, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TicketError(f"ticket draft is not JSON-able: {exc}") from None
        row = {
            "caller_hash": self._key.hash(n),
            "caller_enc": self._key.encrypt(n),
            "created_at": now.isoformat(),
            "status": Status.ACCEPTED.value,
            "status_at": now.isoformat(),
            "feedback_due": (now.date() + timedelta(days=days)).isoformat(),
            "seat": str(draft["seat"]),
            "department": str(draft.get("department") or ""),
            "summary": summary,
            "call_id": str(draft["call_id"]),
            "fields": fields_json,
        }

        def ins(db: sqlite3.Connection) -> str:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tickets").fetchone()[0]
            tid = f"{now:%Y%m%d}{seq:06d}"
            db.execute(
                "INSERT INTO tickets (seq, id, caller_hash, caller_enc, created_at, status,"
                " status_at, feedback_due, seat, department, summary, call_id, fields) VALUES"
                " (:seq, :id, :caller_hash, :caller_enc, :created_at, :status, :status_at,"
                " :feedback_due, :seat, :department, :summary, :call_id, :fields)",
                {**row, "seq": seq, "id": tid},
            )
            db.execute(
                "INSERT INTO status_history VALUES (?, ?, ?, ?)",
                (tid, row["status"], str(draft.get("agent") or "ivr"), row["created_at"]),
            )
            return tid

        tid = await self._run(ins)
        return Ticket(
            id=tid,
            caller=n,
            created_at=now,
            status=Status.ACCEPTED,
            feedback_due=date.fromisoformat(row["feedback_due"]),
            seat=row["seat"],
            department=row["department"],
            summary=summary,
            call_id=row["call_id"],
        )

    async def update_status(self, ticket_id: str, status: Status | str, who: str = "") -> Ticket:
        new = status if isinstance(status, Status) else Status.parse(status)
        at = self._now().isoformat()

        def upd(db: sqlite3.Connection) -> tuple[Any, ...]:
            row = db.execute("SELECT status FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:
                raise TicketNotFound(f"no ticket {ticket_id!r}")
            check_transition(Status(row[0]), new)
            db.execute(
                "UPDATE tickets SET status = ?, status_at = ? WHERE id = ?",
                (new.value, at, ticket_id),
            )
            db.execute(
                "INSERT INTO status_history VALUES (?, ?, ?, ?)",
                (ticket_id, new.value, who, at),
            )
            return db.execute(
                "SELECT id, caller_enc, created_at, status, feedback_due, seat, department,"
                " summary, call_id FROM tickets WHERE id = ?",
                (ticket_id,),
            ).fetchone()

        return self._ticket(await self._run(upd))

    def _ticket(self, r: tuple[Any, ...]) -> Ticket:
        return Ticket(
            id=r[0],
            caller=self._key.decrypt(r[1]),
            created_at=datetime.fromisoformat(r[2]),
            status=Status(r[3]),
            feedback_due=date.fromisoformat(r[4]),
            seat=r[5],
            department=r[6],
            summary=r[7],
            call_id=r[8],
        )

    # ---- drafts -------------------------------------------------------------------------
    async def save_draft(self, call_id: str, draft: Mapping[str, Any]) -> None:
        if not isinstance(call_id, str) or not call_id.strip():
            raise TicketError("a draft needs a call id")
        if not isinstance(draft, Mapping):
            raise TicketError("a draft must be a mapping")
        body = dict(draft)
        caller = body.pop("caller", None)
        n = normalize(str(caller)) if caller else None
        try:
            text = json.dumps(body, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TicketError(f"draft is not JSON-able: {exc}") from None
        now = self._now().isoformat()
        h = self._key.hash(n) if n else None
        enc = self._key.encrypt(n) if n else None

        def put(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO drafts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE"
                " SET draft = excluded.draft, updated_at = excluded.updated_at,"
                " caller_hash = COALESCE(excluded.caller_hash, caller_hash),"
                " caller_enc = COALESCE(excluded.caller_enc, caller_enc)",
                (call_id, text, text, h, enc, now, now),
            )

        await self._run(put)

    async def get_draft(self, call_id: str) -> Draft | None:
        def get(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            return db.execute(
                "SELECT draft, caller_enc FROM drafts WHERE call_id = ?", (call_id,)
            ).fetchone()

        row = await self._run(get)
        if row is None:
            return None
        draft = decode_message(row[0])
        if draft is None:
            raise TicketError(f"the stored draft of call {call_id!r} is not readable")
        if row[1]:
            draft["caller"] = self._key.decrypt(row[1])
        return draft

    async def correct_draft(self, call_id: str, field: str, value: Any, who: str) -> Draft:
        check_correction(field, who)
        try:
            new_json = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TicketError(f"correction value is not JSON-able: {exc}") from None
        at = self._now().isoformat()

        def fix(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT draft FROM drafts WHERE call_id = ?", (call_id,)).fetchone()
            if row is None:
                raise TicketNotFound(f"no draft for call {call_id!r}")
            draft = decode_message(row[0])
            if draft is None:
                raise TicketError(f"the stored draft of call {call_id!r} is not readable")
            old = json.dumps(draft.get(field), ensure_ascii=False)
            draft[field] = value
            db.execute(
                "UPDATE drafts SET draft = ?, updated_at = ? WHERE call_id = ?",
                (json.dumps(draft, ensure_ascii=False), at, call_id),
            )
            db.execute(
                "INSERT INTO corrections (call_id, field, old, new, who, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, field, old, new_json, who, at),
            )

        await self._run(fix)
        draft = await self.get_draft(call_id)
        assert draft is not None
        return draft

    async def corrections(self, call_id: str | None = None) -> list[Correction]:
        """Recorded corrections, oldest first (all calls, or one)."""

        def q(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = "SELECT call_id, field, old, new, who, at FROM corrections"
            if call_id is None:
                return db.execute(sql + " ORDER BY id").fetchall()
            return db.execute(sql + " WHERE call_id = ? ORDER BY id", (call_id,)).fetchall()

        return [
            Correction(
                r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], datetime.fromisoformat(r[5])
            )
            for r in await self._run(q)
        ]

    async def field_accuracy(self) -> dict[str, tuple[int, int]]:
        """Per draft field: (drafts that had it or got it, drafts in which an agent changed
        it).  The share unchanged is the extraction's accuracy as agents judged it."""

        def q(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            drafts = db.execute("SELECT call_id, original, draft FROM drafts").fetchall()
            fixed = db.execute("SELECT DISTINCT call_id, field FROM corrections").fetchall()
            return drafts, fixed

        drafts, fixed = await self._run(q)
        changed = {(c, f) for c, f in fixed}
        out: dict[str, list[int]] = {}
        for call_id, original, current in drafts:
            both = (decode_message(original) or {}, decode_message(current) or {})
            for field in set(both[0]) | set(both[1]):
                seen = out.setdefault(field, [0, 0])
                seen[0] += 1
                seen[1] += (call_id, field) in changed
        return {f: (n, c) for f, (n, c) in sorted(out.items())}

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                self._db.close()

        await asyncio.to_thread(shut)
