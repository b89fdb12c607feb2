"""The router's side of callbacks (docs/acd.md "Callbacks"), mixed into
:class:`acd.router.AcdRouter`.

- ``AcdCallback`` (the waiting room, after ``acd_callback`` confirmed a number): the token
  (the number encrypted with the PII key) is checked and kept in ``acd:cbnum``, the engine
  marks the call a callback (same place, no channel), the channel is forgotten (its hang-up
  is no abandon) and told ``HOTLINE_ACD_CB_OK``.
- An offer of a callback (the agent is already reserved): AMI ``Originate`` of
  ``PJSIP/<number>@carrier`` into ``[hotline-acd-callback]`` with ``ChannelId`` = the call's
  id, so every later event (``DialEnd``, ``Hangup``) names the call as before.
- ``AcdCallbackUp`` (answered): the channel is the call's again; the Dial context rings the
  reserved agent and the usual handlers follow.
- ``AcdCallbackFailed`` (Asterisk's ``failed`` extension: no answer, busy, unreachable) or a
  refused Originate: ``engine.callback_failed`` frees the agent and retries the call after
  ``retry_after_s``; after ``retries`` it is given up and becomes a ticket.

Everything lives in Redis (the engine's keys, ``acd:chan``, ``acd:cbnum``), so a restarted
router carries pending callbacks on.  The number is decrypted only to dial it and never
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from acd.callback import TOKEN, callback_number, dial_string
from acd.policy import Offer, Refused, check_id
from hotline import dialplan_vars as V
from hotline.privacy import CallerKey

if TYPE_CHECKING:
    from acd.engine import RedisEngine
    from hotline.ami import AmiClient
    from hotline.config import HotlineConfig

log = logging.getLogger("acd.router")

TicketSink = Callable[[dict[str, Any]], Awaitable[object]]
"""Creates a ticket from a draft (``tickets.TicketStore.create``)."""


class CallbackMixin:
    """Callback handlers; the router provides the attributes below."""

    config: HotlineConfig
    redis: Any
    engine: RedisEngine
    chan_key: str
    ami: AmiClient | None
    clock: Callable[[], float]
    tickets: TicketSink | None

    async def _act(self, action: str, **fields: object) -> bool:
        raise NotImplementedError

    async def execute(self, offers: list[Offer]) -> None:
        raise NotImplementedError

    @property
    def cb_key(self) -> str:
        return self.engine.prefix + "cbnum"

    @cached_property
    def caller_key(self) -> CallerKey:
        return CallerKey.from_file(self.config.tickets.key_file)

    def _number(self, token: str) -> str | None:
        try:
            return callback_number(self.caller_key.decrypt(token))
        except (OSError, ValueError):
            return None

    async def _on_callback(self, event: dict[str, str]) -> None:
        """A waiting caller confirmed a number: keep the place, forget the channel."""
        call_id, channel = event.get("Uniqueid", ""), event.get("Channel", "")
        token = event.get("Token", "")
        try:
            check_id("call", call_id)
        except Refused as exc:
            log.warning("AcdCallback ignored: %s", exc)
            return
        if not self.config.acd.callback.enabled or not TOKEN.fullmatch(token):
            log.warning("call %s: callback refused (disabled or malformed)", call_id)
            return
        if self._number(token) is None:
            log.warning("call %s: callback refused (number not readable)", call_id)
            return
        known = self.redis.hget(self.chan_key, call_id)
        if _text(known) != channel:
            log.warning("call %s: callback refused (not this router's waiting channel)", call_id)
            return
        try:
            self.redis.hset(self.cb_key, call_id, token)
            self.engine.callback(call_id, self.clock())
        except Refused as exc:
            self.redis.hdel(self.cb_key, call_id)
            log.info("call %s: callback refused: %s", call_id, exc)
            return
        self.redis.hdel(self.chan_key, call_id)
        await self._act("Setvar", Channel=channel, Variable=V.ACD_CB_OK, Value="1")
        log.info("call %s keeps its place for a callback", call_id)

    async def _originate(self, offer: Offer) -> list[Offer]:
        """Call the caller back for an offer (its agent is reserved); offers that follow a
        failure to start the call."""
        token = _text(self.redis.hget(self.cb_key, offer.call_id))
        number = self._number(token) if token else None
        if number is None:
            log.error("call %s: no readable callback number; given up", offer.call_id)
            return self.engine.hangup(offer.call_id, self.clock())
        skill = _text(self.redis.hget(f"{self.engine.prefix}c:{offer.call_id}", "sk"))
        cb = self.config.acd.callback
        ok = await self._act(
            "Originate",
            Channel=dial_string(number),
            Context=V.ACD_CALLBACK_CONTEXT,
            Exten="s",
            Priority=1,
            Timeout=int(cb.ring_s * 1000),
            CallerID=f'"{self.config.hotline.number}" <{self.config.hotline.number}>',
            ChannelId=offer.call_id,
            Async="true",
            Variable=f"{V.ACD_AGENT}={offer.agent_id},{V.CALL_ID}={offer.call_id},{V.SEAT}={skill}",
        )
        if ok:
            log.info("call %s: calling back for agent %s", offer.call_id, offer.agent_id)
            return []
        return await self._callback_failed(offer.call_id, offer.agent_id, "originate refused")

    async def _on_callback_up(self, event: dict[str, str]) -> None:
        """The called-back caller answered: the channel is the call's from now on."""
        call_id, channel = event.get("Uniqueid", ""), event.get("Channel", "")
        if not _is_callback(self.engine, call_id):
            return
        self.redis.hset(self.chan_key, call_id, channel)
        log.info("call %s: the caller answered the callback", call_id)

    async def _on_callback_failed(self, event: dict[str, str]) -> None:
        call_id = event.get("CallId", "")
        if not _is_callback(self.engine, call_id) or self.redis.hexists(self.chan_key, call_id):
            return
        state = self.engine.call_state(call_id)
        if state is None or state[0] != "reserved":
            return
        reason = event.get("Reason", "")[:3]
        await self.execute(await self._callback_failed(call_id, state[1], f"reason {reason}"))

    async def _callback_failed(self, call_id: str, agent_id: str, why: str) -> list[Offer]:
        """Free the agent; retry later or, after the last try, make a ticket."""
        token = _text(self.redis.hget(self.cb_key, call_id))
        skill = _text(self.redis.hget(f"{self.engine.prefix}c:{call_id}", "sk"))
        try:
            offers = self.engine.callback_failed(agent_id, call_id, self.clock())
        except Refused as exc:
            log.info("call %s: callback failure not applied: %s", call_id, exc)
            return []
        tries = self.engine.callback_tries(call_id)
        if tries is not None:
            log.info("call %s: callback failed (%s), try %d; retried later", call_id, why, tries)
            return offers
        log.warning("call %s: callback failed (%s) after every retry; a ticket", call_id, why)
        await self._ticket(call_id, skill, token)
        return offers

    async def _ticket(self, call_id: str, skill: str, token: str) -> None:
        number = self._number(token) if token else None
        if self.tickets is None or number is None:
            log.error("call %s: callback given up; no ticket store or number", call_id)
            return
        draft = {
            "caller": number,
            "call_id": call_id,
            "seat": skill or self.config.general_seat.id,
            "summary": "回拨未接通，请跟进（来电选择回拨，多次回拨无人接听）",
            "source": "acd-callback",
            "tries": self.config.acd.callback.retries + 1,
        }
        try:
            ticket = await self.tickets(draft)
        except Exception as exc:  # the store is down: the number stays in acd:cbnum
            log.error("call %s: callback ticket not made (%s)", call_id, type(exc).__name__)
            return
        self.redis.hdel(self.cb_key, call_id)
        log.info("call %s: callback ticket %s", call_id, getattr(ticket, "id", "?"))


def _is_callback(engine: RedisEngine, call_id: str) -> bool:
    try:
        check_id("call", call_id)
    except Refused:
        return False
    return engine.callback_tries(call_id) is not None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
