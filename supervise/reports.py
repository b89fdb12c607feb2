"""日报/周报/月报 per seat and per agent, computed from the stored call records (never from
counters that can drift), no I/O.

A call *offered* to a seat joined its queue (``queued_at``, or the start of a record kept
before that field existed); *answered* when an agent took it (the first agent leg), within
the service level when the wait was at most ``service_level_s``; *abandoned* when the caller
hung up while waiting.  Handle time is answer → hang-up (wrap-up is not recorded yet).  Top
matters and districts come from the calls' drafts (the last draft of each call).  Not-ready
time by reason comes from the ACD's ``agent_events`` table when it exists.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hotline.call import CallRecord

Period = Literal["day", "week", "month"]
PERIOD_NAMES = {"day": "日报", "week": "周报", "month": "月报"}
TOP = 5


class ReportError(ValueError):
    """A bad report request (unknown period, unparsable date)."""


def period_bounds(
    period: str, day: str | None, zone: ZoneInfo, today: date
) -> tuple[datetime, datetime]:
    """``[start, end)`` of the day, the ISO week (Monday first) or the month holding ``day``."""
    if period not in PERIOD_NAMES:
        raise ReportError(f"period must be one of {', '.join(PERIOD_NAMES)}")
    try:
        d = date.fromisoformat(day) if day else today
    except ValueError:
        raise ReportError(f"not an ISO date: {day[:20]!r}") from None
    if period == "day":
        lo, hi = d, d + timedelta(days=1)
    elif period == "week":
        lo = d - timedelta(days=d.weekday())
        hi = lo + timedelta(days=7)
    else:
        lo = d.replace(day=1)
        hi = (lo + timedelta(days=32)).replace(day=1)
    start = datetime(lo.year, lo.month, lo.day, tzinfo=zone)
    end = datetime(hi.year, hi.month, hi.day, tzinfo=zone)
    return start, end


class _Tally:
    def __init__(self) -> None:
        self.offered = self.answered = self.in_sl = self.abandoned = self.handled = 0
        self.answer_wait = self.abandon_wait = self.handle_s = 0.0
        self.matters: Counter[str] = Counter()
        self.districts: Counter[str] = Counter()

    def row(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "answered": self.answered,
            "service_level": round(self.in_sl / self.offered, 3) if self.offered else None,
            "asa_s": round(self.answer_wait / self.answered, 1) if self.answered else None,
            "abandoned": self.abandoned,
            "abandoned_wait_s": round(self.abandon_wait / self.abandoned, 1)
            if self.abandoned
            else None,
            "aht_s": round(self.handle_s / self.handled, 1) if self.handled else None,
            "top_matters": self.matters.most_common(TOP),
            "top_districts": self.districts.most_common(TOP),
        }


def _matter(rec: CallRecord) -> tuple[str, str]:
    draft = rec.drafts[-1] if rec.drafts else {}
    kind = draft.get("type") if isinstance(draft.get("type"), str) else ""
    what = draft.get("department") or draft.get("seat_name") or ""
    matter = "/".join(x for x in (kind, what if isinstance(what, str) else "") if x)
    district = draft.get("district") if isinstance(draft.get("district"), str) else ""
    return matter[:60], district[:50]


def build_report(
    records: Iterable[CallRecord],
    period: str,
    start: datetime,
    end: datetime,
    *,
    service_level_s: float = 20.0,
    seat_names: dict[str, str] | None = None,
    agent_names: dict[str, str] | None = None,
    agent_events: list[tuple[str, str, str, float]] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The report of ``records`` (those first seen in ``[start, end)``); an agent still not
    ready counts until ``now`` (or the period's end)."""
    zone = start.tzinfo
    seats: dict[str, _Tally] = defaultdict(_Tally)
    agents: dict[str, _Tally] = defaultdict(_Tally)
    total = _Tally()
    buckets: dict[str, Counter[str]] = defaultdict(Counter)
    lo, hi = start.timestamp(), end.timestamp()
    for rec in records:
        joined = rec.queued_at or rec.started_at
        if not rec.seat or joined is None or rec.route not in ("queue", "fallback"):
            continue
        if not lo <= joined < hi:
            continue
        when = datetime.fromtimestamp(joined, zone)
        bucket = f"{when.hour:02d}" if period == "day" else when.date().isoformat()
        matter, district = _matter(rec)
        leg = rec.agents[0] if rec.agents else None
        queued = (seats[rec.seat], total)
        tallies = (*queued, agents[str(leg.get("agent"))]) if leg is not None else queued
        for t in queued:
            t.offered += 1
        for t in tallies:
            if matter:
                t.matters[matter] += 1
            if district:
                t.districts[district] += 1
        buckets[bucket]["offered"] += 1
        if leg is not None and isinstance(leg.get("at"), int | float):
            wait = max(0.0, leg["at"] - joined)
            for t in tallies:
                t.answered += 1
                t.answer_wait += wait
                t.in_sl += wait <= service_level_s
                if rec.ended_at is not None:
                    t.handled += 1
                    t.handle_s += max(0.0, rec.ended_at - leg["at"])
            buckets[bucket]["answered"] += 1
        elif rec.ended_at is not None and not any(
            x.get("kind") == "queue_exit" for x in rec.transfers
        ):
            for t in queued:
                t.abandoned += 1
                t.abandon_wait += max(0.0, rec.ended_at - joined)
            buckets[bucket]["abandoned"] += 1
    upto = min(hi, now) if now is not None else hi
    not_ready = not_ready_by_reason(agent_events, lo, upto) if agent_events is not None else None
    seat_names = seat_names or {}
    agent_names = agent_names or {}
    agent_rows = []
    for a in sorted(set(agents) | set(not_ready or {})):
        row = {"agent": a, "name": agent_names.get(a, a), **agents[a].row()}
        t = agents[a]  # an agent's service level: the share of its answers within the time
        row["service_level"] = round(t.in_sl / t.answered, 3) if t.answered else None
        row.pop("offered")
        row.pop("abandoned")
        row.pop("abandoned_wait_s")
        row["not_ready_s"] = (not_ready or {}).get(a, {}) if not_ready is not None else None
        agent_rows.append(row)
    return {
        "period": period,
        "title": PERIOD_NAMES[period],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "service_level_s": service_level_s,
        "total": total.row(),
        "seats": [
            {"seat": s, "name": seat_names.get(s, s), **seats[s].row()} for s in sorted(seats)
        ],
        "agents": agent_rows,
        "series": [
            {"bucket": b, **{k: buckets[b][k] for k in ("offered", "answered", "abandoned")}}
            for b in sorted(buckets)
        ],
        "not_ready_known": not_ready is not None,
    }


def not_ready_by_reason(
    events: list[tuple[str, str, str, float]], lo: float, hi: float
) -> dict[str, dict[str, float]]:
    """Seconds each agent spent not ready, per reason, within ``[lo, hi)``, from the agent's
    state changes (each lasts until the agent's next change, or ``hi``)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    last: dict[str, tuple[str, str, float]] = {}
    for agent, state, reason, at in sorted(events, key=lambda e: e[3]):
        prev = last.get(agent)
        if prev and prev[0] == "not_ready":
            out[agent][prev[1] or "未说明"] += max(0.0, min(at, hi) - max(prev[2], lo))
        last[agent] = (state, reason, at)
    for agent, (state, reason, at) in last.items():
        if state == "not_ready":
            out[agent][reason or "未说明"] += max(0.0, hi - max(at, lo))
    return {a: {r: round(s, 1) for r, s in rs.items()} for a, rs in out.items()}


CSV_COLUMNS = (
    "offered",
    "answered",
    "service_level",
    "asa_s",
    "abandoned",
    "abandoned_wait_s",
    "aht_s",
    "top_matters",
    "top_districts",
)
CSV_HEADER = (
    "范围",
    "编号",
    "名称",
    "呼入",
    "接通",
    "服务水平",
    "平均应答时长(秒)",
    "放弃",
    "放弃平均等待(秒)",
    "平均处理时长(秒)",
    "主要事项",
    "主要区县",
    "未就绪(秒,按原因)",
)


def _cell(value: Any) -> str:
    """A CSV cell that no spreadsheet runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(f"{k} {n}" for k, n in value)
    elif isinstance(value, dict):
        value = "; ".join(f"{k} {v:.0f}" for k, v in value.items())
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV (one row per seat, per agent, and the total)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_HEADER)
    w.writerow(["合计", "", "", *(_cell(report["total"].get(c)) for c in CSV_COLUMNS), ""])
    for s in report["seats"]:
        w.writerow(
            [
                "席位",
                _cell(s["seat"]),
                _cell(s["name"]),
                *(_cell(s.get(c)) for c in CSV_COLUMNS),
                "",
            ]
        )
    for a in report["agents"]:
        w.writerow(
            [
                "坐席",
                _cell(a["agent"]),
                _cell(a["name"]),
                *(_cell(a.get(c)) for c in CSV_COLUMNS),
                _cell(a.get("not_ready_s")),
            ]
        )
    return out.getvalue()
