"""Follow calls to agents (AMI) and drafts (Redis), and push each agent's screen.

* ``UserEvent HotlineRoute`` (the dialplan, after the IVR): the call's seat, queue and IVR path.
* ``AgentConnect`` (app_queue, the agent answered; for a call the ACD router carried, the
  ``DialEnd`` of its Dial context, ``hotline.call.answered_by``): the agent (``agent<ID>``
  member or the dialled channel), the caller's channel and number; ``Getvar`` reads
  ``HOTLINE_CALL_ID`` and
  ``HOTLINE_CALLER_FLAG`` from that channel.  The agent's feed gets a ``call`` event with the
  draft (the ticket store's, else the speech service's message in Redis, else ``None``).
* ``draft`` events of the call event stream (``calls.stream``, consumer group
  ``console-feed``): a draft finished after the agent answered goes to that agent's feed.
* ``kb`` events (action ``offered``): the knowledge-base article the IVR played the caller
  goes on the agent's screen-pop as ``kb_played``.
* ``Hangup`` of the caller's channel: a ``hangup`` event; the call is forgotten.

Both connections are re-made with back-off when they drop; the console never affects calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from calls.stream import CallStream, StreamConsumer
from console.feed import FeedHub
from hotline import dialplan_vars as V
from hotline.ami import AmiClient, AmiError, follow_events
from hotline.call import (
    DRAFT_KEY,
    CallEvent,
    TicketDraft,
    agent_id_of,
    answered_by,
    caller_number,
    draft_view,
    kb_fact,
)
from hotline.config import HotlineConfig
from hotline.privacy import mask

log = logging.getLogger("console.follow")

FEED_GROUP = "console-feed"
FEED_CONSUMER = "console-1"
GETVAR_TIMEOUT_S = 2.0
FORGET_AFTER_S = 4 * 3600
"""Calls never seen hanging up are forgotten after this long."""


@dataclass
class CallRecord:
    """What the console knows about one call (by Asterisk linkedid)."""

    linkedid: str
    call_id: str = ""
    caller: str = ""
    caller_channel: str = ""
    seat: str | None = None
    queue: str | None = None
    ivr_path: str | None = None
    caller_flag: str = "normal"
    agent: str | None = None
    answered_at: float | None = None
    seen_at: float = 0.0
    kb_played: dict[str, Any] | None = None
    """The knowledge-base article the IVR played the caller (第十一条), if any."""


class CallFollower:
    """Turns AMI and Redis events into screen events on a :class:`FeedHub`."""

    def __init__(
        self,
        config: HotlineConfig,
        hub: FeedHub,
        store: Any,
        redis: Any,
        clock: Callable[[], float] = time.time,
        kb: Any = None,
    ) -> None:
        self.config = config
        self.kb = kb
        """A :class:`console.kb.KbSlot`: the draft's top articles go with it to the screen."""
        self.hub = hub
        self.store = store
        self.redis = redis
        self.clock = clock
        self.calls: dict[str, CallRecord] = {}
        self.by_call_id: dict[str, str] = {}
        """call id → linkedid (they are equal unless HOTLINE_CALL_ID was set otherwise)."""
        self.ami: AmiClient | None = None
        self.ami_connected = False
        self.drafts: StreamConsumer | None = None

    # ---- lookups ------------------------------------------------------------------------
    def call(self, call_id: str) -> CallRecord | None:
        return self.calls.get(self.by_call_id.get(call_id, call_id))

    async def draft_for(self, call_id: str) -> dict[str, Any] | None:
        """The stored draft, else the speech service's message still in Redis, else None."""
        with contextlib.suppress(Exception):
            draft = await self.store.get_draft(call_id)
            if draft is not None:
                return draft
        if self.redis is not None:
            with contextlib.suppress(Exception):
                draft = TicketDraft.parse(await self.redis.get(DRAFT_KEY.format(call_id=call_id)))
                if draft is not None:
                    return draft.stored()
        return None

    def screen(self, rec: CallRecord, draft: dict[str, Any] | None) -> dict[str, Any]:
        """The ``call`` event for an agent: numbers masked."""
        return {
            "event": "call",
            "call_id": rec.call_id,
            "agent": rec.agent,
            "seat": rec.seat,
            "seat_name": self._seat_name(rec.seat),
            "queue": rec.queue,
            "ivr_path": rec.ivr_path,
            "caller_flag": rec.caller_flag,
            "caller": mask(rec.caller) if rec.caller else "withheld",
            "answered_at": rec.answered_at,
            "draft": draft_view(draft),
            "kb_played": rec.kb_played,
        }

    def _seat_name(self, seat: str | None) -> str | None:
        return next((s.name for s in self.config.seats if s.id == seat), None)

    # ---- AMI ----------------------------------------------------------------------------
    def _record(self, linkedid: str) -> CallRecord:
        rec = self.calls.get(linkedid)
        if rec is None:
            rec = self.calls[linkedid] = CallRecord(linkedid, call_id=linkedid)
            self.by_call_id[linkedid] = linkedid
        rec.seen_at = self.clock()
        return rec

    async def on_ami_event(
        self, event: dict[str, str], getvar: Callable[[str, str], Awaitable[str]] | None = None
    ) -> None:
        """Handle one AMI event (``getvar(channel, variable)`` reads a channel variable)."""
        name = event.get("Event", "")
        linkedid = event.get("Linkedid", "")
        if name == "UserEvent" and event.get("UserEvent") == "HotlineRoute" and linkedid:
            rec = self._record(linkedid)
            rec.seat = event.get("Seat") or rec.seat
            rec.queue = event.get("Queue") or rec.queue
            rec.ivr_path = event.get("Path") or rec.ivr_path
            self._alias(rec, event.get("CallId", ""))
        elif name == "UserEvent" and event.get("UserEvent") == "HotlineFallback" and linkedid:
            rec = self._record(linkedid)
            rec.seat = rec.seat or event.get("Seat")
            rec.queue = rec.queue or event.get("Queue")
            self._alias(rec, event.get("CallId", ""))
        elif name in ("AgentConnect", "DialEnd") and linkedid and answered_by(event):
            await self._answered(self._record(linkedid), event, getvar)
        elif name == "Hangup" and linkedid in self.calls:
            rec = self.calls[linkedid]
            if event.get("Channel") == rec.caller_channel or not rec.caller_channel:
                self._forget(rec)
        self._expire()

    def _alias(self, rec: CallRecord, call_id: str) -> None:
        if call_id and call_id != rec.call_id:
            rec.call_id = call_id
            self.by_call_id[call_id] = rec.linkedid

    async def _answered(
        self,
        rec: CallRecord,
        event: dict[str, str],
        getvar: Callable[[str, str], Awaitable[str]] | None,
    ) -> None:
        agent = agent_id_of(event)
        if not agent:
            return
        rec.agent = agent
        rec.answered_at = self.clock()
        rec.caller_channel = event.get("Channel", rec.caller_channel)
        rec.caller = caller_number(event.get("CallerIDNum", "") or rec.caller)
        rec.queue = event.get("Queue") or rec.queue
        if getvar is not None and rec.caller_channel:
            try:
                async with asyncio.timeout(GETVAR_TIMEOUT_S):
                    flag = await getvar(rec.caller_channel, V.CALLER_FLAG)
                    call_id = await getvar(rec.caller_channel, V.CALL_ID)
                    path = await getvar(rec.caller_channel, V.IVR_PATH)
                    seat = await getvar(rec.caller_channel, V.SEAT)
            except (TimeoutError, AmiError, OSError) as exc:
                log.warning("call %s: channel variables unreadable (%s)", rec.linkedid, exc)
            else:
                rec.caller_flag = flag or rec.caller_flag
                rec.ivr_path = rec.ivr_path or path or None
                rec.seat = rec.seat or seat or None
                self._alias(rec, call_id)
        draft = await self.draft_for(rec.call_id)
        event_out = self.screen(rec, draft) | await self._articles(draft)
        sent = self.hub.publish(agent, event_out)
        log.info("call %s answered by agent %s (%d screens)", rec.call_id, agent, sent)

    def _forget(self, rec: CallRecord) -> None:
        if rec.agent:
            self.hub.publish(rec.agent, {"event": "hangup", "call_id": rec.call_id})
        self.calls.pop(rec.linkedid, None)
        for cid in [c for c, lid in self.by_call_id.items() if lid == rec.linkedid]:
            self.by_call_id.pop(cid, None)

    def _expire(self) -> None:
        old = self.clock() - FORGET_AFTER_S
        for rec in [r for r in self.calls.values() if r.seen_at < old]:
            self._forget(rec)

    # ---- drafts from the call event stream ----------------------------------------------
    async def on_draft_message(self, raw: bytes | str) -> None:
        """A speech message (JSON): to the screen of the agent on that call, if any."""
        message = TicketDraft.parse(raw)
        if message is not None:
            await self._push_draft(message.call_id, message.stored())

    async def on_call_event(self, event: CallEvent, _entry_id: str = "") -> None:
        """A ``draft`` event of the call event stream: to the agent on that call, if any."""
        draft = event.data.get("draft")
        if event.kind == "draft" and isinstance(draft, dict):
            await self._push_draft(event.call_id, draft)
        elif event.kind == "kb" and event.data.get("action") == "offered":
            rec = self.call(event.call_id) or self._record(event.call_id)
            rec.kb_played = kb_fact(event.data)

    async def _push_draft(self, call_id: str, fallback: dict[str, Any]) -> None:
        rec = self.call(call_id)
        if rec is None or not rec.agent:
            return
        draft = await self.draft_for(rec.call_id) or fallback
        self.hub.publish(
            rec.agent,
            {"event": "draft", "call_id": rec.call_id, "draft": draft_view(draft)}
            | await self._articles(draft),
        )

    async def _articles(self, draft: dict[str, Any] | None) -> dict[str, Any]:
        """``{"kb": …}``: the knowledge base's top articles for the draft's (masked)
        transcript (None: no text or no index yet); nothing without a knowledge base."""
        if self.kb is None:
            return {}
        view = draft_view(draft) or {}
        text = view.get("transcript")
        return {"kb": await self.kb.screen(text) if isinstance(text, str) else None}

    # ---- loops --------------------------------------------------------------------------
    async def run(self) -> None:
        loops = [self._ami_loop()]
        if self.redis is not None:
            c = self.config.calls
            stream = CallStream(self.redis, maxlen=c.stream_maxlen,
                                retention_s=c.retention_days * 86400,
                                claim_idle_s=c.claim_idle_s)  # fmt: skip
            self.drafts = StreamConsumer(stream, FEED_GROUP, FEED_CONSUMER, self.on_call_event)
            loops.append(self.drafts.run())
        await asyncio.gather(*loops)

    def _connected(self, client: AmiClient | None) -> None:
        self.ami, self.ami_connected = client, client is not None

    async def _on_ami(self, event: dict[str, str], client: AmiClient) -> None:
        async def getvar(channel: str, variable: str) -> str:
            reply = await client.action("Getvar", Channel=channel, Variable=variable)
            return reply.get("Value", "") if reply.get("Response") == "Success" else ""

        await self.on_ami_event(event, getvar)

    async def _ami_loop(self) -> None:
        a = self.config.ami
        await follow_events(a.host, a.port, a.username, a.secret, self._on_ami,
                            "calls to agents", self._connected)  # fmt: skip

    @property
    def redis_connected(self) -> bool:
        return self.drafts is not None and self.drafts.connected

    def status(self) -> dict[str, Any]:
        return {
            "ami_connected": self.ami_connected,
            "redis_connected": self.redis_connected,
            "calls_followed": len(self.calls),
            "agents_on_call": sorted({r.agent for r in self.calls.values() if r.agent}),
            "calls": [asdict(r) | {"caller": mask(r.caller)} for r in self.calls.values()],
        }
