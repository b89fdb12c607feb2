"""Supervisors see the calls waiting for the ACD router and raise (or lower) one's priority:
the boost of docs/acd.md.

::

    GET  /api/acd/calls                                → the waiting calls (at most LIMIT)
    POST /api/acd/calls/{call_id}/priority {"priority": 0..acd.max_priority}  → 202, command sent
    GET  /supervisor/queue                             the page (等待来电; log in on it)

Supervisors only; a call is its channel's uniqueid (the engine's call id).  The list is read
from the engine's queues (:func:`acd.waiting.waiting_calls`): per call its skill and seat
name, place, seconds waited, priority and whether it is a callback; never the caller's
number (第二十条).  The console never changes queue state: for a boost it checks that the
call is waiting now (409 otherwise), appends an :class:`acd.call_commands.PriorityCommand`
to the ACD's command stream and the router re-scores the call in one Lua call.  Every
request is in the access audit (who, when, the answer); a boost adds the call and the
priority, a list how many calls it showed.  Redis down → 503 (and nothing sent).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from redis.exceptions import RedisError

from access.store import User
from access.web import ERRORS, Problem, note, require
from acd.agent_log import quick_client
from acd.call_commands import PriorityCommand
from acd.commands import MAXLEN, STREAM, Source
from acd.policy import Refused, check_id
from acd.waiting import waiting_calls
from hotline.config import HotlineConfig

log = logging.getLogger("console.acd_calls")

SUPERVISOR = require("supervisor")
PREFIX = "acd:"
"""The engine's key prefix (acd/lua.py)."""
LIMIT = 500
"""Waiting calls listed at most (by seat, then place); ``total`` still counts them all."""
PAGE = Path(__file__).with_name("queue.html")
DOWN = "排队服务不可用 (the ACD's Redis is down)"


class PriorityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: StrictInt = Field(ge=0, le=100)


class PrioritySent(BaseModel):
    """The command as sent to the ACD router."""

    call: str
    priority: int
    by: str
    at: float
    entry: str


class WaitingCallView(BaseModel):
    """One waiting call: no caller data (第二十条)."""

    call: str
    skill: str
    seat: str
    """The seat's Chinese name from the config (the skill id for a seat it no longer has)."""
    place: int
    waited_s: float
    priority: int
    callback: bool


class WaitingCalls(BaseModel):
    calls: list[WaitingCallView]
    total: int
    """All the calls waiting; more than ``len(calls)`` when the list was cut at LIMIT."""
    max_priority: int
    at: float


class CallDesk:
    """The console's side of waiting calls: a ``redis.asyncio`` client (lazy)."""

    def __init__(self, config: HotlineConfig, redis: Any = None) -> None:
        self.config = config
        self._redis = redis

    @property
    def redis(self) -> Any:
        if self._redis is None:
            self._redis = quick_client(self.config)
        return self._redis

    async def waiting(self, request: Request) -> WaitingCalls:
        """The calls waiting now, noted in the audit entry by their number."""
        names = {seat.id: seat.name for seat in self.config.seats}
        try:
            found = await waiting_calls(self.redis, list(names), limit=LIMIT, prefix=PREFIX)
        except (RedisError, OSError) as exc:
            log.warning("ACD queue store unavailable: %s: %s", type(exc).__name__, exc)
            raise HTTPException(503, f"{DOWN}; the waiting calls cannot be read") from None
        now = time.time()
        calls = [
            WaitingCallView(
                call=c.call_id,
                skill=c.skill,
                seat=names.get(c.skill, c.skill),
                place=c.place,
                waited_s=round(max(0.0, now - c.arrived), 1),
                priority=c.priority,
                callback=c.callback,
            )
            for c in found.calls
        ]
        note(request, f"{len(calls)} of {found.total} waiting calls listed")
        top = self.config.acd.max_priority
        return WaitingCalls(calls=calls, total=found.total, max_priority=top, at=now)

    async def boost(
        self, request: Request, call_id: str, priority: int, user: User
    ) -> PrioritySent:
        """Check the call waits now, send the command, note it in the audit entry."""
        try:
            check_id("call", call_id)
        except Refused:
            raise HTTPException(422, "malformed call id") from None
        top = self.config.acd.max_priority
        if priority > top:
            raise HTTPException(422, f"priority must be 0..{top} (acd.max_priority)")
        cmd = PriorityCommand(call_id, priority, Source.SUPERVISOR, user.name[:64])
        try:
            state = await self.redis.hget(f"{PREFIX}c:{call_id}", "st")
            if state not in (b"waiting", "waiting"):
                raise HTTPException(409, f"call {call_id} is not waiting for an agent")
            entry = await self.redis.xadd(STREAM, cmd.fields(), maxlen=MAXLEN, approximate=True)
        except (RedisError, OSError) as exc:
            log.warning("ACD queue store unavailable: %s: %s", type(exc).__name__, exc)
            raise HTTPException(503, f"{DOWN}; nothing was sent") from None
        note(request, f"call {call_id} priority {priority} by supervisor")
        log.info("call %s: priority %d asked by supervisor %s", call_id, priority, user.name)
        entry = entry.decode() if isinstance(entry, bytes) else str(entry)
        return PrioritySent(call=call_id, priority=priority, by=cmd.by, at=cmd.at, entry=entry)


def router(desk: CallDesk) -> APIRouter:
    r = APIRouter(responses=ERRORS)
    down = "the ACD's Redis is down"

    @r.get("/supervisor/queue", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @r.get("/api/acd/calls", responses={503: {"model": Problem, "description": down}})
    async def waiting(request: Request, _: Annotated[User, Depends(SUPERVISOR)]) -> WaitingCalls:
        return await desk.waiting(request)

    @r.post(
        "/api/acd/calls/{call_id}/priority",
        status_code=202,
        responses={
            409: {"model": Problem, "description": "the call is not waiting for an agent"},
            503: {"model": Problem, "description": f"{down}; nothing was sent"},
        },
    )
    async def priority(
        call_id: str,
        body: PriorityBody,
        request: Request,
        user: Annotated[User, Depends(SUPERVISOR)],
    ) -> PrioritySent:
        return await desk.boost(request, call_id, body.priority, user)

    return r


def mount(app: FastAPI, config: HotlineConfig, redis: Any = None) -> CallDesk:
    """Add the routes and the page to ``app``; the Redis client is closed with the app."""
    desk = CallDesk(config, redis)
    app.include_router(router(desk))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            try:
                yield state
            finally:
                if redis is None and desk._redis is not None:
                    with contextlib.suppress(Exception):
                        await desk._redis.aclose()

    app.router.lifespan_context = lifespan
    return desk
