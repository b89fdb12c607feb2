"""Demand statistics (第二十一条: analyse the hotline's data for the government's decisions).

Counts of registered demands in the stored drafts — by district, seat, demand type and hour
of day (the hotline's timezone) — read from the SQLite ticket store.  A draft holding several
demands (第八条) counts each demand for seat and type, once for district and hour.  The current
draft is counted, so agents' corrections are reflected.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hotline.call import decode_message

NONE = "未识别"
"""The bucket for a demand whose field is unknown."""


class StatsError(ValueError):
    """Bad statistics request (unparsable or reversed dates)."""


def parse_when(value: str | None, zone: ZoneInfo) -> datetime | None:
    """An ISO date or date-time; naive values are the hotline's local time."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise StatsError(f"not an ISO date or time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def rows(path: str | Path) -> list[tuple[str, str]]:
    """``(draft JSON, created_at)`` of every stored draft (read-only; [] if no database)."""
    p = Path(path)
    if not p.exists():
        return []
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT draft, created_at FROM drafts").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def demand_stats(
    records: list[tuple[str, str]],
    timezone: str = "Asia/Shanghai",
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Counts of demands in ``records`` created in ``[since, until)``."""
    zone = ZoneInfo(timezone)
    lo, hi = parse_when(since, zone), parse_when(until, zone)
    if lo and hi and hi <= lo:
        raise StatsError("'until' must be after 'since'")
    by: dict[str, Counter[str]] = {k: Counter() for k in ("district", "seat", "type", "hour")}
    drafts = demands = 0
    for text, created in records:
        draft = decode_message(text)
        try:
            at = datetime.fromisoformat(created)
        except (TypeError, ValueError):
            continue
        if draft is None:
            continue
        at = at if at.tzinfo else at.replace(tzinfo=zone)
        if (lo and at < lo) or (hi and at >= hi):
            continue
        items = [d for d in draft.get("demands") or [] if isinstance(d, dict)]
        if not items and draft.get("seat"):
            items = [draft]
        if not items:
            continue
        # the top-level fields mirror the first demand; an agent's correction changes them
        items[0] = {k: draft.get(k) or items[0].get(k) for k in ("seat", "type")}
        drafts += 1
        demands += len(items)
        by["district"][draft.get("district") or NONE] += 1
        by["hour"][f"{at.astimezone(zone).hour:02d}"] += 1
        for d in items:
            by["seat"][d.get("seat") or NONE] += 1
            by["type"][d.get("type") or NONE] += 1
    return {
        "since": lo.isoformat() if lo else None,
        "until": hi.isoformat() if hi else None,
        "drafts": drafts,
        "demands": demands,
        **{f"by_{k}": dict(sorted(c.items())) for k, c in by.items()},
    }
