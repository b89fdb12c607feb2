"""Agent state commands: the console and the phones' feature codes ask, the ACD router decides.

An agent going ready can be matched at once with a waiting call, and that offer must be
carried out by the one process that speaks to Asterisk (the router, ``acd/router.py``).  So
nobody but the router changes agent state in the engine: the console's buttons and the
feature-code AGI handler append an :class:`AgentCommand` to one Redis Stream
(:data:`STREAM`, bounded), and the router reads it in a consumer group, applies each command
once and executes the offers it produced.  Reading an agent's state (``RedisEngine.agent_state``)
is open to every process.

A command is checked when it is made and again when it is read: a malformed entry (from a
bug or a hostile writer with Redis access) is refused with :class:`CommandError`, never
applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acd.policy import Reason, Refused, check_id

STREAM = "acd:commands"
GROUP = "acd-router"
MAXLEN = 10_000
"""Commands kept in the stream (``XADD MAXLEN ~``): hours of a busy centre's state changes."""


class Op(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"


class Source(StrEnum):
    """Where the command came from (kept with the state change for reports and audit)."""

    CONSOLE = "console"
    PHONE = "phone"
    SUPERVISOR = "supervisor"
    SYSTEM = "system"


class CommandError(ValueError):
    """A command that is not well formed (nothing is sent or applied)."""


@dataclass(frozen=True, slots=True)
class AgentCommand:
    op: Op
    agent_id: str
    reason: Reason | None = None
    """Only for ``not_ready`` (required there)."""
    source: Source = Source.CONSOLE
    by: str = ""
    """The user (console) or endpoint (phone) that asked; for the audit trail."""
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "op", Op(self.op))
            object.__setattr__(self, "source", Source(self.source))
            check_id("agent", self.agent_id)
        except (ValueError, Refused) as exc:
            raise CommandError(str(exc)) from None
        if self.op is Op.NOT_READY:
            if self.reason is None:
                raise CommandError("not_ready needs a reason")
            try:
                object.__setattr__(self, "reason", Reason(self.reason))
            except ValueError:
                raise CommandError(f"unknown reason {str(self.reason)[:40]!r}") from None
        elif self.reason is not None:
            raise CommandError(f"{self.op} takes no reason")
        if len(self.by) > 64 or any(c in self.by for c in "\r\n\x00"):
            raise CommandError("malformed 'by'")
        if not isinstance(self.at, int | float) or not 0 < self.at < 1e11:
            raise CommandError(f"bad time {self.at!r}")

    def fields(self) -> dict[str, str]:
        """The stream entry."""
        return {
            "op": str(self.op),
            "agent": self.agent_id,
            "reason": str(self.reason or ""),
            "source": str(self.source),
            "by": self.by,
            "at": repr(float(self.at)),
        }

    @classmethod
    def parse(cls, raw: dict[Any, Any]) -> AgentCommand:
        """A stream entry back into a command (bytes or str keys/values)."""

        def text(key: str) -> str:
            value = raw.get(key, raw.get(key.encode(), b""))
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

        try:
            at = float(text("at"))
        except ValueError:
            raise CommandError(f"bad time {text('at')[:20]!r}") from None
        return cls(
            op=text("op"),  # type: ignore[arg-type]
            agent_id=text("agent"),
            reason=text("reason") or None,  # type: ignore[arg-type]
            source=text("source") or Source.SYSTEM,  # type: ignore[arg-type]
            by=text("by"),
            at=at,
        )


async def send(redis: Any, command: AgentCommand, maxlen: int = MAXLEN) -> str:
    """Append ``command`` to the stream (``redis`` is a ``redis.asyncio`` client); returns the
    entry id.  Raises the client's connection errors: the caller tells the user it failed."""
    entry = await redis.xadd(STREAM, command.fields(), maxlen=maxlen, approximate=True)
    return entry.decode() if isinstance(entry, bytes) else str(entry)
