"""A call's facts, typed, in one place (no I/O): what every producer writes and every reader
(ACD, console, record store, ``hotline calls``) reads.

* :class:`CallerId` — the caller as a masked display plus a keyed hash; the number itself
  never leaves the process that read it (第二十条).  One withheld check
  (:func:`hotline.privacy.is_withheld`), one masking of numbers (:func:`hotline.privacy.mask`)
  and of free text (:func:`hotline.privacy.mask_text`, also what speech masks transcripts with).
* :class:`IvrOutcome` — how the IVR ended: route kind, seat, queue, priority, IVR path,
  notice, emergency line and reason; :meth:`IvrOutcome.channel_variables` is the one place
  that turns it into ``HOTLINE_*`` variables.
* :class:`TicketDraft` — the speech service's message for one listen, parsed from JSON in
  one place (:meth:`TicketDraft.parse`), masked once, stored as :meth:`TicketDraft.stored`.
* :class:`CallEvent` — one fact on the call event stream (``calls.stream``), identified by
  the channel's linkedid (our call id) and uniqueid, never by a caller field.
* :class:`CallRecord` — every fact of one call, merged from its events
  (:meth:`CallRecord.apply`); agent legs, transfers and recordings have their place in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from hotline import dialplan_vars as V
from hotline.privacy import is_withheld, mask, mask_text, normalize

# ---- Redis names shared by the speech service, the AGI side and the console ----------------
DRAFT_KEY = "hotline:draft:{call_id}"
"""The latest speech message of a call (JSON)."""
LISTEN_DRAFT_KEY = "hotline:draft:{call_id}:{listen_id}"
"""The speech message of one listen of a call (a call may listen more than once)."""
DRAFT_CHANNEL = "hotline:drafts"
"""Pub/sub channel where each speech message is also published."""
ALIVE_KEY = "hotline:speech:alive"
"""The speech service's heartbeat."""
EVENTS_STREAM = "hotline:calls:events"
"""The call event stream (Redis Streams, see ``calls.stream``)."""

WITHHELD = "withheld"
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def caller_number(raw: str | None) -> str:
    """The caller number as delivered (control characters and padding stripped), or ``""``
    when it is withheld (``anonymous``, ``unknown``, ``Restricted`` …)."""
    text = "".join(ch for ch in (raw or "") if ch.isprintable())[:64].strip()
    return "" if is_withheld(text) else text


def valid_id(value: object) -> str:
    """A channel uniqueid/linkedid or our call id, or ``""`` if it is not one."""
    text = str(value or "")
    return text if _ID_RE.match(text) else ""


def answered_by(event: Mapping[str, str]) -> str:
    """The agent id when ``event`` says an agent answered a carrier call, else ``""``:
    app_queue's ``AgentConnect``, or the ``DialEnd`` (ANSWER) of the ACD router's Dial
    context on the caller's channel (``Context`` and ``DestChannel`` are Asterisk's)."""
    name = event.get("Event", "")
    if name == "AgentConnect":
        return agent_id_of(event)
    if (
        name == "DialEnd"
        and event.get("DialStatus") == "ANSWER"
        and event.get("Context") == V.ACD_DIAL_CONTEXT
    ):
        return agent_id_of(event)
    return ""


def agent_id_of(event: Mapping[str, str]) -> str:
    """``agent1002`` (MemberName, Interface ``PJSIP/agent1002`` or the agent's channel) → 1002."""
    for key in ("MemberName", "Interface", "DestChannel"):
        value = event.get(key, "").removeprefix("PJSIP/").split("-")[0]
        if value.startswith("agent") and value[5:].isdigit():
            return value[5:]
    return ""


# ---- the caller ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallerId:
    """Who called, as stored anywhere outside the call itself: masked and hashed."""

    masked: str = WITHHELD
    hash: str = ""
    withheld: bool = True

    @classmethod
    def of(cls, number: str | None, hasher: Any = None) -> CallerId:
        """From the raw number; ``hasher`` (``hotline.privacy.CallerKey``) gives the hash."""
        n = normalize(caller_number(number))
        if n is None:
            return cls()
        return cls(
            masked=mask(n), hash=hasher.hash(n) if hasher is not None else "", withheld=False
        )


# ---- the IVR's outcome ---------------------------------------------------------------------
RouteKind = Literal["queue", "emergency", "hangup"]


@dataclass(frozen=True, slots=True)
class IvrOutcome:
    """How the IVR ended, as the dialplan executes it."""

    route: RouteKind
    ivr_path: str = ""
    seat: str = ""
    queue: str = ""
    priority: int = 0
    notice: str = ""
    """The out-of-scope notice heard (第九条 2–4), if any."""
    emergency_line: str = ""
    emergency_reason: str = ""
    hangup_reason: str = ""
    via: str = ""
    """How the seat was chosen: ``key``, ``speech``, ``exhausted``, ``closed``, ``limit``."""

    def channel_variables(self) -> list[tuple[str, str]]:
        """The ``(variable, value)`` pairs for the dialplan, in order, ``HOTLINE_ROUTE`` last
        (a call that fails half-way has no route and goes to the general seat)."""
        out: list[tuple[str, str]] = [(V.NOTICE, self.notice)] if self.notice else []
        if self.route == "queue":
            out += [
                (V.QUEUE, self.queue),
                (V.SEAT, self.seat),
                (V.PRIORITY, str(self.priority)),
            ]
        elif self.route == "emergency":
            out += [
                (V.EMERGENCY_LINE, self.emergency_line),
                (V.EMERGENCY_REASON, self.emergency_reason),
            ]
        return [*out, (V.IVR_PATH, self.ivr_path), (V.ROUTE, self.route)]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IvrOutcome:
        """Refuses (``ValueError``) anything that is not an outcome."""
        if data.get("route") not in ("queue", "emergency", "hangup"):
            raise ValueError(f"unknown route {data.get('route')!r}")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "priority":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("priority must be an integer")
            elif not isinstance(value, str) or len(value) > 256:
                raise ValueError(f"{key} must be short text")
            kwargs[key] = value
        return cls(**kwargs)


# ---- the ticket draft ----------------------------------------------------------------------
RECOGNISER_KEYS = ("listen_id", "engine", "ended_by", "latency_s", "audio_seconds", "created_at")
DROPPED_FIELDS = ("emergency_heard",)
"""Extractor details the ticket has no use for."""
NUMBER_KEYS = ("caller", "callback")


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """One speech message (``speech.service``) for one listen of one call."""

    call_id: str
    listen_id: str = ""
    transcript: str = ""
    """Masked by the extractor (identity and bank card numbers, 第二十条)."""
    fields: dict[str, Any] = field(default_factory=dict)
    """What ``speech.fields.extract`` found (seat, district, emergency, confidence …)."""
    recogniser: dict[str, Any] = field(default_factory=dict)
    audio: str | None = None
    error: str = ""

    @classmethod
    def parse(cls, raw: bytes | str | Mapping[str, Any] | None) -> TicketDraft | None:
        """The one parser of the speech message (JSON text or an already decoded mapping);
        ``None`` for anything that is not one."""
        message = raw if isinstance(raw, Mapping) else decode_message(raw)
        if message is None:
            return None
        call_id = str(message.get("call_id") or "")
        found = message.get("fields")
        found = dict(found) if isinstance(found, Mapping) else {}
        return cls(
            call_id=call_id,
            listen_id=str(message.get("listen_id") or ""),
            transcript=str(found.get("transcript") or ""),
            fields=found,
            recogniser={k: message[k] for k in RECOGNISER_KEYS if k in message},
            audio=message.get("audio_path") if isinstance(message.get("audio_path"), str) else None,
            error=str(message.get("error") or ""),
        )

    @property
    def usable(self) -> dict[str, Any] | None:
        """The fields the call flow acts on, or ``None`` when nothing was extracted."""
        return self.fields or None

    def stored(self, caller: str = "") -> dict[str, Any]:
        """What the ticket store keeps: extracted fields at the top level, the masked
        transcript (not the raw recogniser text), the audio reference, recogniser facts and
        the caller's number (the store hashes and encrypts it)."""
        record: dict[str, Any] = {k: v for k, v in self.fields.items() if k not in DROPPED_FIELDS}
        record["call_id"] = self.call_id
        record["transcript"] = self.transcript
        record["audio"] = self.audio
        record.update(self.recogniser)
        if self.error:
            record["speech_error"] = self.error
        if caller:
            record["caller"] = caller
        return record


def decode_message(raw: bytes | str | None) -> dict[str, Any] | None:
    """The one JSON decoder of the speech service's message and of a stored draft: the
    object, or ``None`` for anything that is not a JSON object."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def draft_view(draft: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored draft for anyone's screen: numbers masked, texts with long numbers masked."""
    if draft is None:
        return None
    out = dict(draft)
    for key in NUMBER_KEYS:
        if key in out:
            out[key] = mask(str(out[key])) if out[key] not in (None, "") else None
    for key in ("transcript", "summary"):
        if isinstance(out.get(key), str):
            out[key] = mask_text(out[key])
    demands = out.get("demands")
    if isinstance(demands, list):
        out["demands"] = [
            {**d, "summary": mask_text(str(d.get("summary") or ""))} if isinstance(d, dict) else d
            for d in demands
        ]
    return out


# ---- events and the record -----------------------------------------------------------------
EVENT_KINDS = (
    "started",  # the caller's channel appeared (caller masked + hashed)
    "ivr",  # the IVR's outcome (AGI)
    "draft",  # a speech message (speech service)
    "route",  # the dialplan joined a queue (UserEvent HotlineRoute)
    "fallback",  # the dialplan failed open (HotlineFallback)
    "emergency",  # the dialplan dialled an emergency line (HotlineEmergency)
    "notice",  # the dialplan saw an out-of-scope notice (HotlineNotice)
    "queue_exit",  # a waiting caller pressed the emergency key (HotlineQueueExit)
    "harassment",  # an agent flagged the caller (HotlineHarassment)
    "agent",  # an agent answered (AgentConnect)
    "kb",  # a knowledge-base fact: agent's 直接答复/流转交办, the IVR's self-service offer
    "ended",  # the caller's channel hung up
    "recording",  # a recording of the call was stored (python -m recordings)
)
MAX_DATA_BYTES = 16_384
KB_ACTIONS = ("answered", "referred", "offered", "self_served")
"""``kb`` event actions: the agent answered from an article (直接答复) or registered the matter
for a department (流转交办); the IVR played an article (``offered``) and the caller said it
answered the question (``self_served``, 第十一条)."""


class MalformedEvent(ValueError):
    """A stream entry that is not a call event (refused, logged, acknowledged)."""


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One fact about one call: ``call_id`` is the caller channel's linkedid."""

    kind: str
    call_id: str
    at: float
    """Unix time the fact happened."""
    source: str = ""
    """Who wrote it: ``agi``, ``speech``, ``ami``."""
    uniqueid: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        """The stream entry."""
        return {
            "kind": self.kind,
            "call_id": self.call_id,
            "at": f"{self.at:.3f}",
            "source": self.source,
            "uniqueid": self.uniqueid,
            "data": json.dumps(self.data, ensure_ascii=False, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, entry: Mapping[bytes | str, bytes | str]) -> CallEvent:
        """Parse a stream entry; :class:`MalformedEvent` says what is wrong with it."""
        try:
            text = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in entry.items()
            }
        except UnicodeDecodeError:
            raise MalformedEvent("not UTF-8") from None
        kind = text.get("kind", "")
        if kind not in EVENT_KINDS:
            raise MalformedEvent(f"unknown kind {kind[:32]!r}")
        call_id = valid_id(text.get("call_id"))
        if not call_id:
            raise MalformedEvent("no valid call_id")
        try:
            at = float(text.get("at", ""))
        except ValueError:
            raise MalformedEvent("no valid time") from None
        raw = text.get("data", "{}")
        if len(raw) > MAX_DATA_BYTES:
            raise MalformedEvent("data too long")
        try:
            data = json.loads(raw)
        except ValueError:
            raise MalformedEvent("data is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedEvent("data is not an object")
        return cls(
            kind, call_id, at, text.get("source", "")[:16], valid_id(text.get("uniqueid")), data
        )


def _text(data: Mapping[str, Any], key: str, limit: int = 256) -> str:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else ""


def kb_fact(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``kb`` event's fact, checked: its action and only the well-formed known keys."""
    action = _text(data, "action", 16)
    if action not in KB_ACTIONS:
        return None
    fact: dict[str, Any] = {"action": action}
    for key, limit in (("article", 48), ("title", 100), ("department", 50), ("by", 64)):
        if value := _text(data, key, limit):
            fact[key] = value
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        fact["version"] = version
    return fact


@dataclass
class CallRecord:
    """Everything known about one call (by call id = the caller channel's linkedid)."""

    call_id: str
    started_at: float | None = None
    ended_at: float | None = None
    caller: CallerId = field(default_factory=CallerId)
    caller_flag: str = ""
    ivr: IvrOutcome | None = None
    route: str = ""
    """What happened in the end: ``queue``, ``emergency``, ``hangup``, ``fallback`` or ``""``
    (the caller hung up before the IVR decided)."""
    seat: str = ""
    queue: str = ""
    queued_at: float | None = None
    """When the caller joined the seat's queue (the first ``route`` event): waits count from it."""
    notice: str = ""
    emergency_line: str = ""
    emergency_reason: str = ""
    fallback_reasons: list[str] = field(default_factory=list)
    drafts: list[dict[str, Any]] = field(default_factory=list)
    """Masked ticket drafts, one per listen (``draft_view``)."""
    agents: list[dict[str, Any]] = field(default_factory=list)
    """Agent legs: ``{"agent": "1002", "queue": …, "at": …}``."""
    transfers: list[dict[str, Any]] = field(default_factory=list)
    """Later: blind/attended transfers, queue exits to emergency lines."""
    recordings: list[str] = field(default_factory=list)
    """Ids of the call's encrypted recordings (``recordings.index``), one per agent leg."""
    flags: list[str] = field(default_factory=list)
    """Marks set during the call (``harassment``)."""
    kb: list[dict[str, Any]] = field(default_factory=list)
    """Knowledge-base facts, in order: ``{"action": KB_ACTIONS, "article", "version",
    "title", "department", "by", "at"}`` (only the keys that apply)."""
    hangup_cause: str = ""
    events: int = 0

    @property
    def outcome(self) -> str:
        """One word for lists: ``agent``, ``self_served`` (answered by a knowledge-base
        article in the IVR), ``queue``, ``emergency``, ``notice``, ``hangup``, ``fallback`` or
        ``abandoned`` (hung up in the IVR)."""
        if self.agents:
            return "agent"
        if any(k.get("action") == "self_served" for k in self.kb):
            return "self_served"
        if self.emergency_line:
            return "emergency"
        if self.notice and self.route == "hangup":
            return "notice"
        if self.fallback_reasons and self.route in ("", "fallback"):
            return "fallback"
        return self.route or "abandoned"

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def apply(self, event: CallEvent) -> None:
        """Merge one event into the record (idempotent for repeated facts)."""
        d = event.data
        self.events += 1
        if event.kind == "started":
            self.started_at = min(self.started_at or event.at, event.at)
            withheld = bool(d.get("withheld", True))
            self.caller = CallerId(
                masked=_text(d, "caller_masked", 32) or WITHHELD,
                hash=_text(d, "caller_hash", 64),
                withheld=withheld,
            )
        elif event.kind == "ivr":
            try:
                out = IvrOutcome.from_json(d.get("outcome") or {})
            except ValueError:
                return
            self.ivr = out
            self.caller_flag = _text(d, "caller_flag", 16) or self.caller_flag
            self.route = self.route if self.route == "fallback" else out.route
            self.seat = self.seat or out.seat
            self.queue = self.queue or out.queue
            self.notice = self.notice or out.notice
            self.emergency_reason = self.emergency_reason or out.emergency_reason
        elif event.kind == "draft":
            draft = d.get("draft")
            if isinstance(draft, dict):
                view = draft_view(draft) or {}
                listen = view.get("listen_id")
                self.drafts = [x for x in self.drafts if not listen or x.get("listen_id") != listen]
                self.drafts.append(view)
        elif event.kind == "route":
            self.route = self.route or "queue"
            self.queued_at = min(self.queued_at or event.at, event.at)
            self.seat = _text(d, "seat", 32) or self.seat
            self.queue = _text(d, "queue", 64) or self.queue
        elif event.kind == "fallback":
            reason = _text(d, "reason", 64)
            if reason and reason not in self.fallback_reasons:
                self.fallback_reasons.append(reason)
            if not self.ivr or not reason.startswith(("queue-", "general-queue-")):
                self.route = "fallback"
            self.seat = _text(d, "seat", 32) or self.seat
            self.queue = _text(d, "queue", 64) or self.queue
        elif event.kind == "emergency":
            self.emergency_line = _text(d, "line", 8) or self.emergency_line
            self.emergency_reason = _text(d, "reason") or self.emergency_reason
        elif event.kind == "notice":
            self.notice = _text(d, "reason", 32) or self.notice
        elif event.kind == "queue_exit":
            self.transfers.append(
                {"kind": "queue_exit", "queue": _text(d, "queue", 64), "at": event.at}
            )
        elif event.kind == "harassment" and "harassment" not in self.flags:
            self.flags.append("harassment")
        elif event.kind == "agent":
            agent = _text(d, "agent", 16)
            if agent and all(a.get("agent") != agent for a in self.agents):
                self.agents.append({"agent": agent, "queue": _text(d, "queue", 64), "at": event.at})
        elif event.kind == "kb":
            self._kb_fact(d, event.at)
        elif event.kind == "recording":
            rec_id = _text(d, "recording", 64)
            if rec_id and rec_id not in self.recordings:
                self.recordings.append(rec_id)
        elif event.kind == "ended":
            self.ended_at = max(self.ended_at or event.at, event.at)
            self.hangup_cause = _text(d, "cause", 32) or self.hangup_cause

    def _kb_fact(self, d: Mapping[str, Any], at: float) -> None:
        fact = kb_fact(d)
        if fact and all({k: v for k, v in f.items() if k != "at"} != fact for f in self.kb):
            self.kb.append(fact | {"at": at})  # a repeated fact is kept once

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["caller"] = asdict(self.caller)
        out["ivr"] = self.ivr.to_json() if self.ivr else None
        out["outcome"] = self.outcome
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord:
        known = {f.name for f in fields(cls)}
        rec = cls(**{k: v for k, v in data.items() if k in known and k not in ("caller", "ivr")})
        caller = data.get("caller")
        if isinstance(caller, Mapping):
            rec.caller = CallerId(
                **{k: caller[k] for k in ("masked", "hash", "withheld") if k in caller}
            )
        ivr = data.get("ivr")
        if isinstance(ivr, Mapping):
            rec.ivr = IvrOutcome.from_json(ivr)
        return rec


__all__ = [
    "ALIVE_KEY",
    "DRAFT_CHANNEL",
    "DRAFT_KEY",
    "EVENTS_STREAM",
    "KB_ACTIONS",
    "CallEvent",
    "CallRecord",
    "CallerId",
    "IvrOutcome",
    "MalformedEvent",
    "TicketDraft",
    "caller_number",
    "draft_view",
    "is_withheld",
    "kb_fact",
    "mask",
    "mask_text",
]
