"""``agi://…/ivr``: run the hotline call flow (``ivr.flow.call_flow``) on a FastAGI session.

The flow is a generator of :mod:`ivr.actions`; this module performs each action with AGI
commands and hands the terminal one to the dialplan through the ``HOTLINE_*`` variables
(names from :mod:`hotline.dialplan_vars`).  ``HOTLINE_ROUTE`` is always set last, so a call
that fails half-way has no route and the dialplan sends it to the general seat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from acd.interface import RouteDecision, RouteRequest
from acd.queues import queue_name
from agi_scripts.handlers._rules import count_notice, notice_heard
from agi_scripts.protocol import ESCAPE_ALL, AgiEnv, clean_text
from agi_scripts.session import AgiSession
from hotline import dialplan_vars as V
from hotline.config import HotlineConfig
from ivr.actions import (
    TERMINAL,
    Action,
    CallInfo,
    Collect,
    Digits,
    Done,
    EmergencyTransfer,
    Hangup,
    Heard,
    Listen,
    Play,
    Result,
    Route,
)

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.ivr")

Flow = Generator[Action, Result | None, None]
FlowFactory = Callable[[HotlineConfig, CallInfo], Flow]
PROMPT_DIR = "hotline"
CALLER_FLAGS = ("normal", "warning", "suspended")
_BACKGROUND: set[asyncio.Task[object]] = set()
"""Draft keepers still waiting after their call left the IVR."""
MAX_STEPS = 500
"""A flow that yields more actions than this is looping: the call goes back to the dialplan."""


class Listener(Protocol):
    """The speech seam: capture what the caller says for a :class:`Listen` action."""

    async def listen(self, session: AgiSession, call: CallInfo, action: Listen) -> Heard: ...


class NoSpeech:
    """The listener without a speech service (``serve --no-speech``, tests): hears nothing,
    so the flow falls back to the keypad / general seat; the caller is not asked to speak.
    ``serve`` normally installs :class:`agi_scripts.speech_listen.SpeechListener`."""

    async def listen(self, session: AgiSession, call: CallInfo, action: Listen) -> Heard:
        log.info("call %s: no speech service for Listen(%s)", call.call_id, action.prompt)
        return Heard()


def prompt_path(name: str) -> str:
    """Where a bare prompt name lives under the channel's sounds dir (``hotline/greeting``)."""
    return f"{PROMPT_DIR}/{name}"


def call_info_from_env(
    env: AgiEnv,
    call_id: str | None = None,
    caller_flag: str | None = None,
    now: datetime | None = None,
) -> CallInfo:
    """What the flow knows at the start, from the AGI environment (caller data cleaned);
    ``started_at`` is ``now`` (default: the current UTC time) for business hours."""
    caller = clean_text(env.get("agi_callerid"), 64).strip()
    if caller.lower() in ("unknown", "anonymous", "restricted"):
        caller = ""
    dialed = clean_text(env.get("agi_dnid"), 32).strip()
    if not dialed or dialed == "unknown":
        dialed = clean_text(env.get("agi_extension"), 32).strip()
    flag = caller_flag if caller_flag in CALLER_FLAGS else "normal"
    return CallInfo(
        call_id=clean_text(call_id or env.get("agi_uniqueid") or "unknown", 64),
        caller=caller,
        dialed=dialed or "12345",
        caller_flag=flag,
        started_at=now or datetime.now(UTC),
    )


def menu_for(config: HotlineConfig | None, prompts: tuple[str, ...]) -> str | None:
    """The menu whose prompts a :class:`Collect` plays (for the IVR path), if any."""
    if config is None:
        return None
    for name, menu in config.menus.items():
        if tuple(menu.prompts) == prompts or (prompts and prompts[-1] == menu.prompts[-1]):
            return name
    return None


class IvrPath:
    """The steps a caller took: ``main>2`` or ``main>t>main>9>emergency>2`` (``t``: no key)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self._menu: str | None = None

    def collected(self, menu: str | None, digits: str) -> None:
        if menu is not None and menu != self._menu:
            self.steps.append(menu)
            self._menu = menu
        self.steps.append(digits or "t")

    def __str__(self) -> str:
        return ">".join(self.steps)


def terminal_variables(
    action: Route | EmergencyTransfer | Hangup,
    path: str,
    decision: RouteDecision | None = None,
) -> list[tuple[str, str]]:
    """The ``(variable, value)`` pairs the dialplan needs, in order, ROUTE last."""
    if isinstance(action, Route):
        assert decision is not None
        seat = decision.queue.removeprefix("seat_") if decision.queue.startswith("seat_") else ""
        ivr_path = str(action.request.fields.get("ivr_path") or path)
        return [
            (V.QUEUE, decision.queue),
            (V.SEAT, seat or action.request.skill),
            (V.PRIORITY, str(decision.priority)),
            (V.IVR_PATH, ivr_path),
            (V.ROUTE, "queue"),
        ]
    if isinstance(action, EmergencyTransfer):
        return [
            (V.EMERGENCY_LINE, action.line),
            (V.EMERGENCY_REASON, action.reason),
            (V.IVR_PATH, path),
            (V.ROUTE, "emergency"),
        ]
    return [(V.IVR_PATH, path), (V.ROUTE, "hangup")]


async def decide_route(app: AgiApp, request: RouteRequest) -> RouteDecision:
    """Ask the ACD; if it fails, the general seat's queue (a caller always reaches a person)."""
    general = app.config.general_seat.id if app.config is not None else "zonghe"
    if app.router is None:
        return RouteDecision(queue=queue_name(general), priority=request.priority)
    try:
        return await app.router.route(request)
    except Exception:
        log.exception("call %s: ACD router failed; general seat", request.call_id)
        return RouteDecision(queue=queue_name(general), priority=request.priority)


class IvrDriver:
    """Performs one flow's actions on one session."""

    def __init__(self, session: AgiSession, app: AgiApp, call: CallInfo) -> None:
        self.session = session
        self.app = app
        self.call = call
        self.path = IvrPath()
        self.listener: Listener = app.extras.get("listener") or NoSpeech()

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
            try:
                return await self.listener.listen(s, self.call, action)
            finally:  # a caller who hangs up mid-sentence still leaves a draft
                self.keep_draft()
        raise TypeError(f"not an IVR action: {action!r}")

    def keep_draft(self) -> None:
        """Store the call's draft (the ticket store of the caller rules) in the background,
        waiting longer than the caller did: the call never waits on it."""
        redis = getattr(self.listener, "redis", None)
        store = getattr(self.app.extras.get("policy"), "tickets", None)
        if redis is None or store is None:
            return
        from speech.drafts import keep_call_draft

        task = asyncio.create_task(
            keep_call_draft(redis, store, self.call.call_id, self.call.caller)
        )
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

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
        self.path.collected(menu_for(self.app.config, action.prompts), digits)
        return digits

    async def finish(self, action: Route | EmergencyTransfer | Hangup) -> None:
        decision = None
        cfg = self.app.config
        if isinstance(action, EmergencyTransfer) and cfg and action.line not in cfg.emergency.lines:
            # Never dial an unknown number; a person at the general seat takes the call.
            log.error("call %s: flow asked for unknown emergency line %r; general seat",
                      self.call.call_id, action.line)  # fmt: skip
            action = Route(
                RouteRequest(self.call.call_id, self.call.caller, cfg.general_seat.id, 9,
                             {"emergency_reason": action.reason})
            )  # fmt: skip
        if isinstance(action, Route):
            decision = await decide_route(self.app, action.request)
        notice = notice_heard(action)
        if notice:  # 第九条 2–4: the dialplan's HotlineNotice event and the day's count
            await self.session.set_variable(V.NOTICE, notice)
            await count_notice(self.app.extras.get("policy"), notice, self.call.call_id)
        for name, value in terminal_variables(action, str(self.path), decision):
            await self.session.set_variable(name, value)
        log.info(
            "call %s: %s path=%s%s",
            self.call.call_id,
            type(action).__name__,
            self.path,
            f" queue={decision.queue}" if decision else "",
        )


def default_flow() -> FlowFactory:
    """``ivr.flow.call_flow`` (imported late so the server starts without it)."""
    from ivr.flow import call_flow

    return call_flow


class CallerScreen(Protocol):
    """What :meth:`callers.policy.CallerPolicy.screen` returns (duck-typed)."""

    @property
    def flag(self) -> str: ...

    open_tickets: tuple[dict[str, str], ...]


class Screener(Protocol):
    """The caller-rules seam (``callers.policy.CallerPolicy``)."""

    async def screen(self, caller: str, call_id: str) -> CallerScreen: ...


SCREEN_BUDGET_S = 1.5
"""Longest the caller rules may hold a call before the menu (they fail open after that)."""


async def screen_caller(policy: Screener, info: CallInfo) -> CallInfo:
    """Caller flag and open demands from the caller rules; on any failure or delay the call
    goes on as ``normal`` with no tickets (fail open)."""
    try:
        async with asyncio.timeout(SCREEN_BUDGET_S):
            screen = await policy.screen(info.caller, info.call_id)
    except Exception as exc:
        log.warning("call %s: caller rules unavailable (%s); normal", info.call_id, exc)
        return info
    flag = screen.flag if screen.flag in CALLER_FLAGS else "normal"
    return replace(info, caller_flag=flag, open_tickets=tuple(screen.open_tickets))


async def read_call_info(session: AgiSession, app: AgiApp | None = None) -> CallInfo:
    """CallInfo from the env, ``HOTLINE_CALL_ID`` (else the channel's linkedid) and the caller
    rules (``app.extras["policy"]``) or, without them, a ``HOTLINE_CALLER_FLAG`` already set."""
    call_id = await session.get_variable(V.CALL_ID)
    derived = not call_id
    if derived:
        call_id = await session.get_variable("CHANNEL(linkedid)")
    flag = await session.get_variable(V.CALLER_FLAG)
    info = call_info_from_env(session.env, call_id or None, flag)
    session.call_id = info.call_id
    if derived:
        await session.set_variable(V.CALL_ID, info.call_id)
    policy = app.extras.get("policy") if app is not None else None
    if policy is not None:
        info = await screen_caller(policy, info)
        await session.set_variable(V.CALLER_FLAG, info.caller_flag)
    return info


async def handle(session: AgiSession, app: AgiApp) -> None:
    """The FastAGI entry point for route ``ivr``."""
    if app.config is None:
        raise RuntimeError("the ivr handler needs a hotline config")
    call = await read_call_info(session, app)
    factory: FlowFactory = app.extras.get("flow") or default_flow()
    await IvrDriver(session, app, call).run(factory(app.config, call))
