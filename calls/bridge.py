"""AMI → call event stream: the dialplan's UserEvents and the channel events that start and
end a call become :class:`hotline.call.CallEvent` entries.

A call is identified by the AMI event's own ``Linkedid``/``Uniqueid`` headers (Asterisk
sets them), never by a caller-controlled field.  A carrier call starts with the dialplan's
``HotlineCall`` UserEvent on its first channel (``Uniqueid == Linkedid``), raised in
``[hotline-entry]`` after ``[from-carrier]`` normalised the caller's number and name — the
AMI user never sees the channel's earlier events (``hotline.ami.CONSUMED_EVENTS``).  Its
caller number is masked and hashed here and goes no further; the call ends with that
channel's ``Hangup``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from hotline.call import CallerId, CallEvent, answered_by, valid_id

log = logging.getLogger("calls.bridge")

CALL_STARTS = "HotlineCall"
"""The UserEvent that starts a call's record (caller fields already normalised)."""
KNOWN_MAX = 10_000
"""Calls remembered (to know which hang-ups end a carrier call)."""
USER_EVENTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "HotlineRoute": ("route", (("Seat", "seat"), ("Queue", "queue"), ("Path", "ivr_path"))),
    "HotlineFallback": ("fallback", (("Reason", "reason"), ("Seat", "seat"), ("Queue", "queue"))),
    "HotlineEmergency": ("emergency", (("Line", "line"), ("Reason", "reason"))),
    "HotlineNotice": ("notice", (("Reason", "reason"), ("Route", "route"))),
    "HotlineQueueExit": ("queue_exit", (("Queue", "queue"), ("Key", "key"))),
    "HotlineHarassment": ("harassment", (("Agent", "agent"),)),
}


CALLBACK_UP = "AcdCallbackUp"
"""The ACD router's callback leg answered; its channel has the call's id, so its agent's
``DialEnd`` and its ``Hangup`` belong to the call's record again."""


BRIDGE_READY = "AMI bridge: logged in"
"""What ``python -m calls serve`` prints each time the bridge logs in to AMI (the stack's
readiness waits for it)."""


class AmiBridge:
    """Turns AMI events into call events (:meth:`translate`)."""

    def __init__(self, hasher: Any = None, clock: Any = time.time) -> None:
        self.hasher = hasher
        self.clock = clock
        self.known: OrderedDict[str, None] = OrderedDict()

    def _know(self, linkedid: str) -> None:
        self.known[linkedid] = None
        self.known.move_to_end(linkedid)
        while len(self.known) > KNOWN_MAX:
            self.known.popitem(last=False)

    def translate(self, event: dict[str, str]) -> CallEvent | None:
        """The call event for one AMI event, or ``None`` if it is not one of a call's facts."""
        name = event.get("Event", "")
        linkedid = valid_id(event.get("Linkedid"))
        uniqueid = valid_id(event.get("Uniqueid"))
        if not linkedid:
            return None
        now = self.clock()
        first = uniqueid == linkedid
        if name == "UserEvent" and event.get("UserEvent") == CALL_STARTS and first:
            self._know(linkedid)
            caller = CallerId.of(event.get("CallerIDNum"), self.hasher)
            data = {"caller_masked": caller.masked, "caller_hash": caller.hash,
                    "withheld": caller.withheld}  # fmt: skip
            return CallEvent("started", linkedid, now, "ami", uniqueid, data)
        if name == "UserEvent" and event.get("UserEvent") == CALLBACK_UP and first:
            self._know(linkedid)  # a called-back caller (docs/acd.md "Callbacks"): same call
            return None
        if name == "UserEvent" and event.get("UserEvent") in USER_EVENTS:
            kind, keys = USER_EVENTS[event["UserEvent"]]
            self._know(linkedid)
            data = {ours: event.get(theirs, "")[:256] for theirs, ours in keys}
            return CallEvent(kind, linkedid, now, "ami", uniqueid, data)
        if name in ("AgentConnect", "DialEnd"):  # an agent answered (app_queue or the ACD)
            agent = answered_by(event)
            if agent and linkedid in self.known:
                queue = event.get("Queue", "")[:64] if name == "AgentConnect" else "acd"
                data = {"agent": agent, "queue": queue}
                return CallEvent("agent", linkedid, now, "ami", uniqueid, data)
            return None
        if name == "Hangup" and first and linkedid in self.known:
            self.known.pop(linkedid, None)
            data = {"cause": event.get("Cause-txt", event.get("Cause", ""))[:32]}
            return CallEvent("ended", linkedid, now, "ami", uniqueid, data)
        return None
