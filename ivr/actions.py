"""What a call flow asks its transport to do, and what it gets back.

The flow yields an *action*; the transport performs it on the channel and sends back a
*result*.  Terminal actions (:class:`Route`, :class:`EmergencyTransfer`, :class:`Hangup`)
end the flow: the transport hands the call back to the dialplan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from acd.interface import RouteRequest


# ---- actions ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Play:
    """Play prompts to the end (no digits accepted)."""

    prompts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Collect:
    """Play prompts, interruptible by a key, then wait ``timeout_ms`` for up to
    ``max_digits`` keys.  Result: :class:`Digits` (empty string on time-out)."""

    prompts: tuple[str, ...]
    max_digits: int = 1
    timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Listen:
    """Play a prompt, then capture the caller's speech until silence or ``max_s``.
    Result: :class:`Heard` (its ``draft`` is ``None`` when nothing usable came back)."""

    prompt: str
    max_s: float = 20.0
    silence_ms: int = 1500


@dataclass(frozen=True, slots=True)
class LookUp:
    """Ask the knowledge base for the one article to offer a caller for ``transcript``
    (第十一条).  Result: :class:`Article` (empty when there is none; any failure too)."""

    transcript: str


@dataclass(frozen=True, slots=True)
class Route:
    """Terminal: hand the call to the ACD (a seat's queue)."""

    request: RouteRequest
    ivr_path: str = field(default="", compare=False)
    """The caller's valid choices (``main>5>0``): tracked by the flow, nowhere else."""
    notice: str = field(default="", compare=False)
    """The out-of-scope notice (第九条 2–4) heard before the caller pressed 0, if any."""
    via: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class EmergencyTransfer:
    """Terminal: send the call to 110/119/120/122 through the emergency trunk."""

    line: str
    reason: str
    ivr_path: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Hangup:
    """Terminal: end the call (after a goodbye prompt the flow already played)."""

    reason: str
    ivr_path: str = field(default="", compare=False)
    notice: str = field(default="", compare=False)
    """The out-of-scope notice (第九条 2–4) the caller heard, if the call ends for it."""


Action = Play | Collect | Listen | LookUp | Route | EmergencyTransfer | Hangup
TERMINAL = (Route, EmergencyTransfer, Hangup)


# ---- results ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Done:
    """A :class:`Play` finished."""


@dataclass(frozen=True, slots=True)
class Digits:
    """Keys pressed for a :class:`Collect`; ``""`` means the caller pressed nothing."""

    value: str


@dataclass(frozen=True, slots=True)
class Heard:
    """What came of a :class:`Listen`: the transcript and a ticket draft, if any."""

    transcript: str = ""
    draft: dict[str, object] | None = None
    listen_id: str = ""
    """Which listen the draft belongs to (a call may have several)."""


@dataclass(frozen=True, slots=True)
class Article:
    """The knowledge base's answer to a :class:`LookUp`: an article whose spoken answer is
    ready, as prompt names (``about``: "关于<title>，为您播报"), or empty (``id == ""``)."""

    id: str = ""
    version: int = 0
    title: str = ""
    about: str = ""
    answer: str = ""


Result = Done | Digits | Heard | Article


@dataclass(frozen=True, slots=True)
class NoticePrompt:
    """An incident notice (第十三条) in its window: the prompt to play (a name under the
    hotline's prompt directory) and the seats whose callers hear it (empty: every caller)."""

    prompt: str
    seats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the flow knows about the call when it starts (gathered by the transport)."""

    call_id: str
    caller: str
    """The caller's number as delivered by the carrier ('' when withheld)."""
    dialed: str = "12345"
    caller_flag: str = "normal"
    """Caller-rule stage decided before the flow starts (fail-open: ``normal``)."""
    open_tickets: tuple[dict[str, object], ...] = field(default=())
    """The caller's open demands, newest first (for 第十四条 progress)."""
    started_at: datetime | None = None
    """When the call arrived (timezone-aware), for business hours; ``None``: treated as open."""
    notices: tuple[NoticePrompt, ...] = field(default=())
    """Incident notices (第十三条) in their window now, ready to play."""
