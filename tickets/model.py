"""Tickets (工单) and the :class:`TicketStore` protocol every ticket backend implements.

A *draft* is what the IVR's speech extraction produced for a call (``transcript``, ``type``,
``seat``, ``department``, ``district``, ``address``, ``summary`` …); the agent corrects it and
registers one ticket per demand (第八条: several demands → several tickets).  第十四条: a
caller who rings again about the same matter hears its progress from
:meth:`TicketStore.open_demands`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

Draft = dict[str, Any]
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class TicketError(ValueError):
    """Bad input for the ticket store (unknown ticket, missing field …): nothing was changed."""


class TicketNotFound(TicketError):
    """No such ticket or draft."""


class TicketStoreUnavailable(RuntimeError):
    """The store cannot be reached (database locked, HTTP down, time-out)."""


class Status(StrEnum):
    """A ticket's state; ``label`` is what the caller hears/reads."""

    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DONE = "done"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, value: str) -> Status:
        """``accepted``/``已受理``, ``in_progress``/``办理中``, ``done``/``已办结``."""
        for status, label in _LABELS.items():
            if value in (status.value, label):
                return status
        raise TicketError(f"unknown ticket status {value!r}: one of {[s.value for s in cls]}")


_LABELS = {Status.ACCEPTED: "已受理", Status.IN_PROGRESS: "办理中", Status.DONE: "已办结"}
_ORDER = {Status.ACCEPTED: 0, Status.IN_PROGRESS: 1, Status.DONE: 2}


def check_transition(old: Status, new: Status) -> None:
    """Statuses only move forward (已受理 → 办理中 → 已办结)."""
    if _ORDER[new] < _ORDER[old]:
        raise TicketError(f"a ticket cannot go back from {old.label} to {new.label}")


@dataclass(frozen=True, slots=True)
class Ticket:
    """A registered demand (诉求)."""

    id: str
    caller: str
    created_at: datetime
    status: Status
    feedback_due: date
    """反馈期限 (第十五条)."""
    seat: str
    department: str
    summary: str
    call_id: str

    def to_json(self) -> dict[str, str]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["feedback_due"] = self.feedback_due.isoformat()
        d["status"] = self.status.value
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ticket:
        try:
            return cls(
                id=str(data["id"]),
                caller=str(data["caller"]),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                status=Status.parse(str(data["status"])),
                feedback_due=date.fromisoformat(str(data["feedback_due"])),
                seat=str(data["seat"]),
                department=str(data.get("department", "")),
                summary=str(data["summary"]),
                call_id=str(data["call_id"]),
            )
        except (KeyError, ValueError) as exc:
            raise TicketError(f"not a ticket: {exc}") from None


@dataclass(frozen=True, slots=True)
class Correction:
    """An agent's correction of a draft field (kept to measure extraction accuracy)."""

    call_id: str
    field: str
    old: Any
    new: Any
    who: str
    at: datetime


def check_draft_for_ticket(draft: Mapping[str, Any]) -> None:
    """A draft that can become a ticket: ``caller``, ``call_id``, ``seat`` and a
    ``summary`` (or ``transcript``) that are non-empty strings."""
    if not isinstance(draft, Mapping):
        raise TicketError("a ticket draft must be a mapping")
    missing = [k for k in ("caller", "call_id", "seat") if not _text(draft.get(k))]
    if not (_text(draft.get("summary")) or _text(draft.get("transcript"))):
        missing.append("summary")
    if missing:
        raise TicketError(f"ticket draft lacks {', '.join(missing)}")


def check_correction(field: str, who: str) -> None:
    if not isinstance(field, str) or not FIELD_NAME.match(field):
        raise TicketError(f"not a draft field name: {field!r}")
    if field == "caller":
        raise TicketError("the caller number is not corrected through drafts")
    if not isinstance(who, str) or not who.strip():
        raise TicketError("who made the correction is required")


def _text(v: object) -> bool:
    return isinstance(v, str) and bool(v.strip())


class TicketStore(Protocol):
    """What the IVR, the agent console and the throttle's "demand registered" need."""

    async def open_demands(self, caller: str) -> list[Ticket]:
        """The caller's tickets not yet done, and those done in the last 30 days (第十四条:
        progress *or result*), newest first.  Withheld numbers have none."""
        ...

    async def create(self, draft: Mapping[str, Any]) -> Ticket:
        """Register a ticket from a (corrected) draft; status 已受理."""
        ...

    async def save_draft(self, call_id: str, draft: Mapping[str, Any]) -> None:
        """Keep the IVR's draft for a call (replaces an earlier one, keeps the original)."""
        ...

    async def get_draft(self, call_id: str) -> Draft | None: ...

    async def correct_draft(self, call_id: str, field: str, value: Any, who: str) -> Draft:
        """Change one field of a call's draft; the correction is recorded."""
        ...

    async def update_status(self, ticket_id: str, status: Status | str, who: str = "") -> Ticket:
        """Move a ticket forward (已受理 → 办理中 → 已办结)."""
        ...

    async def close(self) -> None: ...
