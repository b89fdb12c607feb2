"""Today's figures per seat and the agents' states, from call events (no I/O).

:class:`LiveModel` keeps one small state per call of the day (joined the seat's queue,
answered by whom, left, ended) and counts on its *transitions* only, so an event applied
twice — a replayed stream entry, or an event already in the records the model was seeded
from — changes nothing.  Figures per seat: waiting now, longest wait, offered, answered,
answered within the service-level time, abandoned (with their waits), average speed of
answer.  Agents: state, since when, the current call's seat and start.

Each :meth:`LiveModel.apply` returns the :class:`Fact` s it caused (answered after a wait,
abandoned …) for the metrics to observe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hotline.call import CallEvent, CallRecord

STALE_WAIT_S = 4 * 3600.0
"""A caller shown waiting longer than this lost its hang-up: no longer counted as waiting."""
AGENT_STATES = ("logged_out", "ready", "reserved", "on_call", "wrapup", "not_ready")
"""The ACD's agent states (``acd.policy.AgentState``); ``unknown`` until one is seen."""


@dataclass(frozen=True, slots=True)
class Fact:
    """What one event did: ``offered``, ``answered`` (``value``: the wait), ``abandoned``
    (the wait), ``exited`` (left the queue for an emergency line), ``emergency`` (``key``: the
    line), ``draft_latency`` (seconds from the end of speech to the draft), ``handled`` (an
    answered call ended; the talk time), ``fallback`` (``key``: why the dialplan failed
    open)."""

    name: str
    key: str
    value: float = 0.0


@dataclass(slots=True)
class _Call:
    seat: str = ""
    joined: float | None = None
    answered: float | None = None
    agent: str = ""
    ended: float | None = None


@dataclass(slots=True)
class SeatDay:
    """One seat's figures for the day."""

    offered: int = 0
    answered: int = 0
    in_service_level: int = 0
    answer_wait_s: float = 0.0
    abandoned: int = 0
    abandoned_wait_s: float = 0.0
    exited: int = 0
    overflowed: int = 0
    """Left this seat's queue unanswered for the general seat's (the dialplan's fallback)."""
    waiting: dict[str, float] = field(default_factory=dict)
    """Call id → when it joined the queue."""


@dataclass(slots=True)
class AgentNow:
    state: str = "unknown"
    since: float | None = None
    reason: str = ""
    call_id: str = ""
    seat: str = ""
    call_since: float | None = None


class LiveModel:
    """Figures of the current day (``timezone``) for ``seats`` and ``agents``."""

    def __init__(
        self,
        seats: dict[str, str],
        agents: dict[str, str],
        *,
        service_level_s: float = 20.0,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seat_names = dict(seats)
        self.agent_names = dict(agents)
        self.service_level_s = service_level_s
        self.zone = ZoneInfo(timezone)
        self.clock = clock
        self.day = self._date(clock())
        self.seats: dict[str, SeatDay] = {s: SeatDay() for s in seats}
        self.agents: dict[str, AgentNow] = {a: AgentNow() for a in agents}
        self.calls: dict[str, _Call] = {}
        self.applied = 0
        self.last_id = ""

    def _date(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.zone).date()

    def _seat(self, seat: str) -> SeatDay:
        if seat not in self.seats:  # a seat the config no longer lists still counts
            self.seats[seat] = SeatDay()
        return self.seats[seat]

    def roll(self, now: float) -> bool:
        """Start a new day's counters when the day changed (callers waiting stay)."""
        today = self._date(now)
        if today == self.day:
            return False
        self.day = today
        for seat, day in self.seats.items():
            self.seats[seat] = SeatDay(waiting=day.waiting)
        waiting = {c for d in self.seats.values() for c in d.waiting}
        on_call = {a.call_id for a in self.agents.values() if a.call_id}
        self.calls = {k: c for k, c in self.calls.items() if k in waiting | on_call}
        return True

    # ---- events -------------------------------------------------------------------------
    def apply(self, event: CallEvent, entry_id: str = "") -> list[Fact]:
        """Merge one call event; the facts it caused (none for a repeat)."""
        self.roll(max(self.clock(), event.at))
        self.applied += 1
        self.last_id = entry_id or self.last_id
        today = self._date(event.at) == self.day
        d = event.data
        kind = event.kind
        if kind == "emergency":
            line = str(d.get("line") or "")[:8]
            return [Fact("emergency", line)] if line else []
        if kind == "draft":
            draft = d.get("draft")
            latency = draft.get("latency_s") if isinstance(draft, dict) else None
            ok = isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0
            return [Fact("draft_latency", "", float(latency))] if ok else []
        if kind not in ("route", "fallback", "agent", "queue_exit", "ended"):
            return []
        call = self.calls.setdefault(event.call_id, _Call())
        if kind == "route":
            return self._joined(event, call, today)
        if kind == "fallback":
            return self._fell_back(event, call, today)
        if kind == "agent":
            return self._answered(event, call, today)
        if kind == "queue_exit":
            return self._left(event.call_id, call, event.at, "exited", today)
        return self._ended(event, call, today)

    def _joined(self, event: CallEvent, call: _Call, today: bool) -> list[Fact]:
        seat = str(event.data.get("seat") or "")[:32]
        if call.joined is not None or call.ended is not None or not seat:
            return []
        call.seat, call.joined = seat, event.at
        day = self._seat(seat)
        if call.answered is None:
            day.waiting[event.call_id] = event.at
        if not today:
            return []
        day.offered += 1
        return [Fact("offered", seat)]

    def _fell_back(self, event: CallEvent, call: _Call, today: bool) -> list[Fact]:
        """The dialplan failed open (``HotlineFallback``): the caller goes to the general
        seat's queue — from no queue (the IVR failed) or from a seat's queue nobody answered
        (it leaves that seat's waiting, counted as ``overflowed`` there).  A fallback after
        the general queue itself (``general-queue-…``) ends the call: only counted."""
        reason = str(event.data.get("reason") or "")[:64]
        seat = str(event.data.get("seat") or "")[:32]
        facts = [Fact("fallback", reason)] if reason else []
        if reason.startswith("general-queue-") or not seat or call.ended is not None:
            return facts
        if call.answered is not None or call.seat == seat:
            return facts
        if call.joined is not None:
            old = self._seat(call.seat)
            if old.waiting.pop(event.call_id, None) is not None and today:
                old.overflowed += 1
            call.joined = None
        routed = CallEvent(
            "route", event.call_id, event.at, event.source, event.uniqueid, {"seat": seat}
        )
        return facts + self._joined(routed, call, today)

    def _answered(self, event: CallEvent, call: _Call, today: bool) -> list[Fact]:
        agent = str(event.data.get("agent") or "")[:16]
        if call.answered is not None or not agent:
            return []
        call.answered, call.agent = event.at, agent
        if call.ended is None:
            self.agents[agent] = AgentNow(
                "on_call", event.at, "", event.call_id, call.seat, event.at
            )
        if call.joined is None:
            return []
        day = self._seat(call.seat)
        day.waiting.pop(event.call_id, None)
        wait = max(0.0, event.at - call.joined)
        if not today:
            return []
        day.answered += 1
        day.answer_wait_s += wait
        day.in_service_level += wait <= self.service_level_s
        return [Fact("answered", call.seat, wait)]

    def _left(self, call_id: str, call: _Call, at: float, how: str, today: bool) -> list[Fact]:
        if call.joined is None or call.answered is not None:
            return []
        day = self._seat(call.seat)
        if day.waiting.pop(call_id, None) is None:
            return []  # already gone
        wait = max(0.0, at - call.joined)
        if not today:
            return []
        if how == "exited":
            day.exited += 1
        else:
            day.abandoned += 1
            day.abandoned_wait_s += wait
        return [Fact(how, call.seat, wait)]

    def _ended(self, event: CallEvent, call: _Call, today: bool) -> list[Fact]:
        if call.ended is not None:
            return []
        call.ended = event.at
        facts = self._left(event.call_id, call, event.at, "abandoned", today)
        agent = self.agents.get(call.agent)
        if agent is not None and agent.call_id == event.call_id:
            self.agents[call.agent] = AgentNow("ready", event.at)
            facts.append(Fact("handled", call.seat, max(0.0, event.at - (call.answered or 0))))
        return facts

    def agent_state(self, agent: str, state: str, reason: str, call_id: str, now: float) -> bool:
        """The ACD's word on an agent (when the ACD routes): changes the state and its
        ``since`` only when the state or reason differ; whether anything changed."""
        if state not in AGENT_STATES:
            return False
        cur = self.agents.setdefault(agent, AgentNow())
        if cur.state == state and cur.reason == reason:
            return False
        call = self.calls.get(call_id) if call_id else None
        on_call = state in ("on_call", "reserved") and call is not None
        self.agents[agent] = AgentNow(
            state,
            now,
            reason,
            call_id if on_call else "",
            call.seat if on_call and call else "",
            (call.answered or now) if on_call and call else None,
        )
        return True

    # ---- seeding ------------------------------------------------------------------------
    def seed(self, records: Iterable[CallRecord]) -> int:
        """Replay today's call records (the events they were merged from, in time order), so
        a restart does not zero the day; how many records were used."""
        events: list[CallEvent] = []
        used = 0
        for rec in records:
            used += 1
            events += record_events(rec)
        for event in sorted(events, key=lambda e: e.at):
            self.apply(event)
        return used

    # ---- reading ------------------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The wallboard's figures, JSON-able."""
        now = self.clock() if now is None else now
        self.roll(now)
        seats = []
        for seat, d in self.seats.items():
            waits = [now - t for t in d.waiting.values() if now - t < STALE_WAIT_S]
            seats.append(
                {
                    "id": seat,
                    "name": self.seat_names.get(seat, seat),
                    "waiting": len(waits),
                    "longest_wait_s": round(max(waits, default=0.0), 1),
                    "offered": d.offered,
                    "answered": d.answered,
                    "abandoned": d.abandoned,
                    "exited": d.exited,
                    "overflowed": d.overflowed,
                    "service_level": round(d.in_service_level / d.offered, 3)
                    if d.offered
                    else None,
                    "asa_s": round(d.answer_wait_s / d.answered, 1) if d.answered else None,
                    "abandoned_wait_s": (
                        round(d.abandoned_wait_s / d.abandoned, 1) if d.abandoned else None
                    ),
                }
            )
        agents = []
        for agent, a in sorted(self.agents.items()):
            agents.append(
                {
                    "id": agent,
                    "name": self.agent_names.get(agent, agent),
                    "state": a.state,
                    "reason": a.reason,
                    "since": a.since,
                    "in_state_s": round(now - a.since, 1) if a.since else None,
                    "call_id": a.call_id,
                    "seat": a.seat,
                    "call_s": round(now - a.call_since, 1) if a.call_since else None,
                }
            )
        return {
            "at": round(now, 3),
            "day": self.day.isoformat(),
            "service_level_s": self.service_level_s,
            "applied": self.applied,
            "last_id": self.last_id,
            "seats": seats,
            "agents": agents,
        }


def record_events(rec: CallRecord) -> list[CallEvent]:
    """The wallboard's events of one stored call record (queue join, answer, queue exit,
    end).  A record from before ``queued_at`` was kept joins at its start."""
    out: list[CallEvent] = []
    joined = rec.queued_at or rec.started_at
    if rec.seat and rec.route in ("queue", "fallback") and joined is not None:
        out.append(CallEvent("route", rec.call_id, joined, "record", data={"seat": rec.seat}))
    for leg in rec.agents[:1]:
        at = leg.get("at")
        if isinstance(at, int | float):
            out.append(CallEvent("agent", rec.call_id, at, "record", data={"agent": leg["agent"]}))
    for t in rec.transfers:
        if t.get("kind") == "queue_exit" and isinstance(t.get("at"), int | float):
            out.append(CallEvent("queue_exit", rec.call_id, t["at"], "record"))
    if rec.ended_at is not None:
        out.append(CallEvent("ended", rec.call_id, rec.ended_at, "record"))
    return out
