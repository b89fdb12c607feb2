"""Performs a call flow's :mod:`ivr.actions` on one AGI session and hands the terminal one to
the dialplan (:class:`IvrDriver`).  The FastAGI ``ivr`` handler and the classic pyst2 script
both use it; the classic script passes a synchronous session wrapped as a coroutine API."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from acd.interface import RouteRequest
from agi_scripts.outcome import Terminal, count_notice, decide_route, outcome_of
from agi_scripts.protocol import ESCAPE_ALL
from agi_scripts.services import Flow
from hotline.call import CallEvent, IvrOutcome
from ivr.actions import (
    TERMINAL,
    Action,
    Article,
    CallInfo,
    Collect,
    Digits,
    Done,
    EmergencyTransfer,
    Hangup,
    Heard,
    Listen,
    LookUp,
    Play,
    Result,
    Route,
)

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp
    from agi_scripts.session import AgiSession

log = logging.getLogger("agi_scripts.handlers.ivr")

PROMPT_DIR = "hotline"
MAX_STEPS = 500
"""A flow that yields more actions than this is looping: the call goes back to the dialplan."""


def prompt_path(name: str) -> str:
    """Where a bare prompt name lives under the channel's sounds dir (``hotline/greeting``)."""
    return f"{PROMPT_DIR}/{name}"


class IvrDriver:
    """Performs one flow's actions on one session."""

    def __init__(self, session: AgiSession, app: AgiApp, call: CallInfo) -> None:
        self.session = session
        self.app = app
        self.call = call
        self.outcome: IvrOutcome | None = None
        self.offered: Article | None = None
        """The knowledge-base article the caller was played (第十一条)."""

    async def run(self, flow: Flow) -> Action | None:
        """Drive ``flow`` to its terminal action and hand that to the dialplan."""
        action = next(flow)
        for _ in range(MAX_STEPS):
            if isinstance(action, TERMINAL):
                flow.close()
                await self.finish(action)  # type: ignore[arg-type]
                return action
            result = await self.perform(action)
            try:
                action = flow.send(result)
            except StopIteration:
                log.warning("call %s: the flow ended without a route", self.call.call_id)
                return None
        flow.close()
        log.warning("call %s: flow exceeded %d steps", self.call.call_id, MAX_STEPS)
        return None

    async def perform(self, action: Action) -> Result:
        s = self.session
        if isinstance(action, Play):
            for prompt in action.prompts:
                await s.stream_file(prompt_path(prompt), "")
            return Done()
        if isinstance(action, Collect):
            return Digits(await self.collect(action))
        if isinstance(action, Listen):
            listener = self.app.listener
            if listener is None:
                log.info("call %s: no speech service for Listen(%s)", self.call.call_id,
                         action.prompt)  # fmt: skip
                return Heard()
            listen_id = str(uuid.uuid4())
            began = time.time()
            try:
                return await listener.listen(s, self.call, action, listen_id)
            finally:  # a caller who hangs up mid-sentence still leaves a draft
                if self.app.drafts is not None:
                    self.app.drafts.keep(self.call.call_id, self.call.caller, listen_id, began)
        if isinstance(action, LookUp):
            return await self.look_up(action)
        raise TypeError(f"not an IVR action: {action!r}")

    async def look_up(self, action: LookUp) -> Article:
        """The knowledge base's article for the caller (empty without one); an offer goes
        on the call event stream, so the record and the agent's screen show it."""
        found = await self.app.kb.offer(action.transcript) if self.app.kb else Article()
        if found.id:
            self.offered = found
            self._kb_event("offered", found)
        return found

    def _kb_event(self, what: str, article: Article) -> None:
        if self.app.events is None:
            return
        data = {"action": what, "article": article.id, "version": article.version,
                "title": article.title}  # fmt: skip
        self.app.events.emit(CallEvent("kb", self.call.call_id, time.time(), "agi", data=data))

    async def collect(self, action: Collect) -> str:
        """Prompts interruptible by any key (the first key stops them), then one
        WAIT FOR DIGIT per further key; ``#`` ends a multi-digit entry."""
        s = self.session
        digits = ""
        for prompt in action.prompts:
            key = await s.stream_file(prompt_path(prompt), ESCAPE_ALL)
            if key:
                digits = key
                break
        while len(digits) < action.max_digits:
            if digits.endswith("#") and action.max_digits > 1:
                break
            key = await s.wait_for_digit(action.timeout_ms)
            if key is None:
                break
            digits += key
        if action.max_digits > 1:
            digits = digits.removesuffix("#")
        return digits

    def _checked(self, action: Terminal) -> Terminal:
        """Never dial an unknown number: a person at the general seat takes the call."""
        cfg = self.app.config
        if isinstance(action, EmergencyTransfer) and cfg and action.line not in cfg.emergency.lines:
            log.error("call %s: flow asked for unknown emergency line %r; general seat",
                      self.call.call_id, action.line)  # fmt: skip
            request = RouteRequest(self.call.call_id, self.call.caller, cfg.general_seat.id, 9,
                                   {"emergency_reason": action.reason})  # fmt: skip
            return Route(request, ivr_path=action.ivr_path)
        return action

    async def finish(self, action: Terminal) -> None:
        action = self._checked(action)
        decision = (
            await decide_route(self.app, action.request) if isinstance(action, Route) else None
        )
        outcome = self.outcome = outcome_of(action, decision)
        if outcome.notice:  # 第九条 2–4: the day's count (the dialplan announces HotlineNotice)
            await count_notice(self.app.policy, outcome.notice, self.call.call_id)
        for name, value in outcome.channel_variables():
            await self.session.set_variable(name, value)
        if isinstance(action, Hangup) and action.reason == "self_served" and self.offered:
            self._kb_event("self_served", self.offered)
        if self.app.events is not None:
            data = {"outcome": outcome.to_json(), "caller_flag": self.call.caller_flag}
            event = CallEvent("ivr", self.call.call_id, time.time(), "agi", data=data)
            self.app.events.emit(event)
        log.info(
            "call %s: %s path=%s%s",
            self.call.call_id,
            type(action).__name__,
            outcome.ivr_path,
            f" queue={outcome.queue}" if outcome.queue else "",
        )
