"""The call record store: one row per call, kept up to date from the event stream and complete
when the call has ended.  SQLite by default (one file, WAL, stdlib ``sqlite3`` in a worker
thread), behind :class:`CallRecordStore`.

A row holds the record as JSON (:class:`hotline.call.CallRecord`: masked caller and its keyed
hash, never the number) plus indexed columns to query by call id, caller hash, date, seat
and outcome.  Each stream entry is applied once (its id is remembered), so an event delivered
again after a consumer restart changes nothing.  ``agent_events`` keeps the ACD's agent and
call changes (``acd:log``, copied by ``calls/agent_events.py``) for reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hotline.call import CallEvent, CallRecord

T = TypeVar("T")
AgentEventRow = tuple[str, int, int, float, str, str, str, str, str, str, float | None]
"""entry_id, ms, seq, t, agent, ev, state, reason, call, skill, wait."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    first_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    caller_hash TEXT NOT NULL DEFAULT '',
    seat TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT '',
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (first_at);
CREATE INDEX IF NOT EXISTS calls_by_caller ON calls (caller_hash, first_at);
CREATE INDEX IF NOT EXISTS calls_by_seat ON calls (seat, first_at);
CREATE TABLE IF NOT EXISTS applied (
    entry_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_events (
    entry_id TEXT PRIMARY KEY,
    ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t REAL NOT NULL,
    agent TEXT NOT NULL,
    ev TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    call TEXT NOT NULL,
    skill TEXT NOT NULL,
    wait REAL
);
CREATE INDEX IF NOT EXISTS agent_events_by_agent ON agent_events (agent, t, ms, seq);
CREATE TABLE IF NOT EXISTS stream_positions (
    stream TEXT PRIMARY KEY,
    last_id TEXT NOT NULL
);
"""


class CallRecordStore(Protocol):
    async def apply(self, event: CallEvent, entry_id: str = "") -> CallRecord: ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def list(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        seat: str | None = None,
        outcome: str | None = None,
        caller_hash: str | None = None,
        limit: int = 100,
    ) -> list[CallRecord]: ...

    async def close(self) -> None: ...


class SqliteCallStore:
    """:class:`CallRecordStore` on one SQLite file (created 0600)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._conn())

        return await asyncio.to_thread(locked)

    async def apply(self, event: CallEvent, entry_id: str = "") -> CallRecord:
        """Merge ``event`` into its call's record (once per ``entry_id``); the record."""

        def tx(db: sqlite3.Connection) -> CallRecord:
            with db:
                row = db.execute(
                    "SELECT record FROM calls WHERE call_id = ?", (event.call_id,)
                ).fetchone()
                rec = CallRecord.from_json(json.loads(row[0])) if row else CallRecord(event.call_id)
                if entry_id:
                    done = db.execute(
                        "INSERT OR IGNORE INTO applied (entry_id, call_id) VALUES (?, ?)",
                        (entry_id, event.call_id),
                    )
                    if done.rowcount == 0:
                        return rec  # seen before
                rec.apply(event)
                first = min(event.at, rec.started_at or event.at)
                db.execute(
                    """INSERT INTO calls (call_id, first_at, started_at, ended_at, caller_hash,
                                          seat, outcome, record)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (call_id) DO UPDATE SET
                         first_at = MIN(first_at, excluded.first_at),
                         started_at = excluded.started_at, ended_at = excluded.ended_at,
                         caller_hash = excluded.caller_hash, seat = excluded.seat,
                         outcome = excluded.outcome, record = excluded.record""",
                    (
                        rec.call_id,
                        first,
                        rec.started_at,
                        rec.ended_at,
                        rec.caller.hash,
                        rec.seat,
                        rec.outcome,
                        json.dumps(rec.to_json(), ensure_ascii=False),
                    ),
                )
                return rec

        return await self._run(tx)

    async def get(self, call_id: str) -> CallRecord | None:
        def q(db: sqlite3.Connection) -> CallRecord | None:
            row = db.execute("SELECT record FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            return CallRecord.from_json(json.loads(row[0])) if row else None

        return await self._run(q)

    async def list(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        seat: str | None = None,
        outcome: str | None = None,
        caller_hash: str | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        """Newest first."""
        where: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("first_at >= ?", since),
            ("first_at < ?", until),
            ("seat = ?", seat),
            ("outcome = ?", outcome),
            ("caller_hash = ?", caller_hash),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT record FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY first_at DESC LIMIT ?"
        args.append(max(1, min(limit, 10_000)))

        def q(db: sqlite3.Connection) -> list[CallRecord]:
            return [CallRecord.from_json(json.loads(r[0])) for r in db.execute(sql, args)]

        return await self._run(q)

    async def keep_agent_events(self, stream: str, rows: list[AgentEventRow], last_id: str) -> int:
        """Store ``rows`` (``acd:log`` entries, once per entry id) and remember ``last_id`` as
        read from ``stream``, in one transaction; how many rows were new."""

        def tx(db: sqlite3.Connection) -> int:
            with db:
                cur = db.executemany(
                    """INSERT OR IGNORE INTO agent_events
                       (entry_id, ms, seq, t, agent, ev, state, reason, call, skill, wait)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    rows,
                )
                db.execute(
                    """INSERT INTO stream_positions (stream, last_id) VALUES (?, ?)
                       ON CONFLICT (stream) DO UPDATE SET last_id = excluded.last_id""",
                    (stream, last_id),
                )
                return max(cur.rowcount, 0)

        return await self._run(tx)

    async def stream_position(self, stream: str) -> str:
        """The last entry id kept from ``stream`` (``0-0`` before the first)."""

        def q(db: sqlite3.Connection) -> str:
            row = db.execute(
                "SELECT last_id FROM stream_positions WHERE stream = ?", (stream,)
            ).fetchone()
            return str(row[0]) if row else "0-0"

        return await self._run(q)

    async def agent_states(
        self, agent: str, start: float, end: float
    ) -> list[tuple[float, str, str]]:
        """``(t, state, reason)`` of ``agent``'s state changes in ``[start, end)``, in order,
        preceded by the last one before ``start`` (the state the period began in)."""

        def q(db: sqlite3.Connection) -> list[tuple[float, str, str]]:
            before = db.execute(
                """SELECT t, state, reason FROM agent_events
                   WHERE agent = ? AND state != '' AND t < ?
                   ORDER BY t DESC, ms DESC, seq DESC LIMIT 1""",
                (agent, start),
            ).fetchall()
            inside = db.execute(
                """SELECT t, state, reason FROM agent_events
                   WHERE agent = ? AND state != '' AND t >= ? AND t < ?
                   ORDER BY t, ms, seq""",
                (agent, start, end),
            ).fetchall()
            return [(float(t), str(st), str(rs)) for t, st, rs in before + inside]

        return await self._run(q)

    async def last_agent_state(self, agent: str) -> tuple[float, str, str] | None:
        """``(t, state, reason)`` of ``agent``'s last kept state change, or None."""

        def q(db: sqlite3.Connection) -> tuple[float, str, str] | None:
            row = db.execute(
                """SELECT t, state, reason FROM agent_events WHERE agent = ? AND state != ''
                   ORDER BY t DESC, ms DESC, seq DESC LIMIT 1""",
                (agent,),
            ).fetchone()
            return (float(row[0]), str(row[1]), str(row[2])) if row else None

        return await self._run(q)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(shut)
