"""Read-only reads of the stores the supervisors' figures come from (SQLite files opened
``mode=ro``, never written): the call records (``calls.path``), the ticket drafts
(``tickets.path``) and, when the ACD keeps one, the agents' state history (``agent_events``).
A missing file or table reads as empty."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hotline.call import CallRecord

AGENT_EVENT_COLUMNS = ("agent", "state", "reason", "t")
"""The columns the not-ready report needs from the ``agent_events`` table that
``calls.agent_events`` keeps from the ACD's log (``t``: unix time; rows with an empty
``state`` are call events, not state changes); a table without them is skipped."""


@contextmanager
def _read(path: str | Path) -> Iterator[sqlite3.Connection | None]:
    p = Path(path)
    if not p.exists():
        yield None
        return
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
    try:
        yield db
    finally:
        db.close()


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def call_records(path: str | Path, since: float, until: float) -> list[CallRecord]:
    """Every call record first seen in ``[since, until)``, oldest first."""
    with _read(path) as db:
        if db is None:
            return []
        try:
            rows = db.execute(
                "SELECT record FROM calls WHERE first_at >= ? AND first_at < ? ORDER BY first_at",
                (since, until),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise
    out = []
    for (text,) in rows:
        try:
            out.append(CallRecord.from_json(json.loads(text)))
        except (ValueError, TypeError):
            continue
    return out


def drafts_in(path: str | Path, windows: list[tuple[datetime, datetime]]) -> list[tuple[str, str]]:
    """``(draft JSON, created_at)`` of drafts created within any of ``windows`` (one scan).
    ``created_at`` is ISO text in the store's time zone: the windows are widened by a day on
    each side for the text comparison; the caller filters exactly."""
    if not windows:
        return []
    day = timedelta(days=1)
    clauses = " OR ".join(["(created_at >= ? AND created_at < ?)"] * len(windows))
    args: list[Any] = []
    for lo, hi in windows:
        args += [(lo - day).isoformat(), (hi + day).isoformat()]
    with _read(path) as db:
        if db is None:
            return []
        try:
            return db.execute(
                f"SELECT draft, created_at FROM drafts WHERE {clauses}", args
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise


def agent_events(
    path: str | Path, since: float, until: float
) -> list[tuple[str, str, str, float]] | None:
    """``(agent, state, reason, at)`` from an ``agent_events`` table in ``path`` during
    ``[since, until)`` plus each agent's last row before ``since``; ``None`` when there is no
    such table (or it lacks the columns)."""
    with _read(path) as db:
        if db is None:
            return None
        cols = {r[1] for r in db.execute("PRAGMA table_info(agent_events)")}
        if not set(AGENT_EVENT_COLUMNS) <= cols:
            return None
        before = db.execute(
            "SELECT agent, state, reason, MAX(t) FROM agent_events"
            " WHERE t < ? AND agent != '' AND state != '' GROUP BY agent",
            (since,),
        ).fetchall()
        rows = db.execute(
            "SELECT agent, state, reason, t FROM agent_events"
            " WHERE t >= ? AND t < ? AND agent != '' AND state != '' ORDER BY t",
            (since, until),
        ).fetchall()
    return [(str(a), str(s), str(r or ""), float(t)) for a, s, r, t in [*before, *rows]]
