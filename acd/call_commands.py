"""Commands about a waiting call (a supervisor's priority boost), applied by the router.

Like the agents' state commands (``acd/commands.py``) they travel on the one command stream
(:data:`acd.commands.STREAM`) so that the router stays the only writer of queue state; the
router tells them apart by ``op`` (:data:`OP_PRIORITY`).  Checked when made and again when
read: a malformed entry is refused with :class:`CommandError`, never applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from acd.commands import CommandError, Source
from acd.policy import Refused, check_id

OP_PRIORITY = "priority"
MAX_PRIORITY = 100
"""The engine clamps to ``acd.max_priority``; beyond this the command is malformed."""


@dataclass(frozen=True, slots=True)
class PriorityCommand:
    """Set a waiting call's priority (the engine re-scores it from its arrival)."""

    call_id: str
    priority: int
    source: Source = Source.SUPERVISOR
    by: str = ""
    """The console user who asked (for the log and the audit trail)."""
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "source", Source(self.source))
            check_id("call", self.call_id)
        except (ValueError, Refused) as exc:
            raise CommandError(str(exc)) from None
        if type(self.priority) is not int or not 0 <= self.priority <= MAX_PRIORITY:
            raise CommandError(f"priority must be 0..{MAX_PRIORITY}")
        if len(self.by) > 64 or not self.by.isprintable():
            raise CommandError("malformed 'by'")
        if not isinstance(self.at, int | float) or not 0 < self.at < 1e11:
            raise CommandError(f"bad time {self.at!r}")

    def fields(self) -> dict[str, str]:
        """The stream entry."""
        return {
            "op": OP_PRIORITY,
            "call": self.call_id,
            "priority": str(self.priority),
            "source": str(self.source),
            "by": self.by,
            "at": repr(float(self.at)),
        }

    @classmethod
    def parse(cls, raw: dict[Any, Any]) -> PriorityCommand:
        """A stream entry back into a command (bytes or str keys/values)."""

        def text(key: str) -> str:
            value = raw.get(key, raw.get(key.encode(), b""))
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

        if text("op") != OP_PRIORITY:
            raise CommandError(f"not a priority command: {text('op')[:20]!r}")
        prio, at = text("priority"), text("at")
        if not (prio.isascii() and prio.isdigit() and len(prio) <= 3):
            raise CommandError(f"bad priority {prio[:20]!r}")
        try:
            when = float(at)
        except ValueError:
            raise CommandError(f"bad time {at[:20]!r}") from None
        return cls(text("call"), int(prio), text("source") or Source.SYSTEM, text("by"), when)  # type: ignore[arg-type]


def is_call_command(raw: dict[Any, Any]) -> bool:
    """Whether a command stream entry is about a call (not an agent)."""
    op = raw.get("op", raw.get(b"op", b""))
    return op in (OP_PRIORITY, OP_PRIORITY.encode())
