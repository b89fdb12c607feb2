"""Agents' ACD state in the console: the agent's own buttons, and the state on the screen.

::

    POST /api/agents/{agent}/login | logout | ready      → 202 and the command sent
    POST /api/agents/{agent}/not-ready {"reason": "break"|"training"|"after_call_work"|"meeting"}
    GET  /api/agents/{agent}/state                        state, reason, since, call

Open to that agent's own user and to supervisors (their commands carry source
``supervisor`` and their name, and the audit entry says whose state they changed).  The
console never changes agent state itself: it appends an :class:`acd.commands.AgentCommand`
to ``acd:commands`` and the ACD router applies it (``acd/commands.py``).  A command that does
not fit the agent's state now (ready while logged out …) is refused with 409 before it is
sent.  Redis down → 503 saying so; nothing was sent.

The agent's feed (``GET /api/agents/{agent}/feed``) carries an ``agent_state`` event for every
change the engine logs (``acd:log``), so the page follows changes made by the router, the
phone's feature codes or a supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from access.store import User
from access.web import ERRORS, Problem, note, require
from acd.agent_log import LOG, BadEntry, NotNow, agent_view, parse_entry, quick_client, submit
from acd.commands import AgentCommand, Op, Source
from calls.store import SqliteCallStore
from console.feed import FeedHub
from hotline.config import HotlineConfig

log = logging.getLogger("console.agent_state")

AGENT_OR_SUPERVISOR = require("agent", "supervisor")
FOLLOW_BLOCK_MS = 1000
"""Under the client's socket time-out (redis-py: 5 s), so a quiet log is no error."""
RETRY_S = 2.0


class NotReady(BaseModel):
    """Why the agent is not ready ("no_answer" is the ACD's own, not the agent's)."""

    model_config = ConfigDict(extra="forbid")
    reason: Literal["break", "training", "after_call_work", "meeting"]


class Sent(BaseModel):
    """The command as sent to the ACD router (it applies it; the state follows)."""

    op: str
    agent: str
    reason: str | None
    source: str
    by: str
    at: float
    entry: str


class AgentStateView(BaseModel):
    agent: str
    state: str
    reason: str | None
    call: str | None
    since: float | None


def agent_or_supervisor(
    agent_id: str, conn: HTTPConnection, user: Annotated[User, Depends(AGENT_OR_SUPERVISOR)]
) -> User:
    """The agent's own user, or a supervisor; the agent must be in the config."""
    if user.role == "agent" and agent_id != user.agent:
        raise HTTPException(403, f"user {user.name!r} is not agent {agent_id[:32]!r}")
    if agent_id not in conn.app.state.agents:
        raise HTTPException(404, f"no agent {agent_id[:32]!r} in the config")
    return user


Who = Annotated[User, Depends(agent_or_supervisor)]


class AgentDesk:
    """The console's side of agent state: a ``redis.asyncio`` client (lazy) and the feed."""

    def __init__(self, config: HotlineConfig, hub: FeedHub, redis: Any = None) -> None:
        self.config = config
        self.hub = hub
        self._redis = redis
        self.records: SqliteCallStore | None = None
        """The call records' store: when a state began, for changes older than the log."""

    async def _history(self, agent_id: str) -> tuple[float, str, str] | None:
        if self.records is None:
            self.records = SqliteCallStore(self.config.calls.path)
        return await self.records.last_agent_state(agent_id)

    @property
    def redis(self) -> Any:
        if self._redis is None:
            self._redis = quick_client(self.config)
        return self._redis

    async def view(self, agent_id: str) -> AgentStateView:
        try:
            v = await agent_view(self.redis, agent_id, history=self._history)
        except (RedisError, OSError) as exc:
            raise _down(exc) from None
        return AgentStateView(**v.public())

    async def command(self, request: Request, agent_id: str, user: User, op: Op,
                      reason: str | None = None) -> Sent:  # fmt: skip
        """Check ``op`` against the state now, send it, note it in the audit entry."""
        source = Source.SUPERVISOR if user.role == "supervisor" else Source.CONSOLE
        cmd = AgentCommand(op, agent_id, reason, source, user.name)  # type: ignore[arg-type]
        try:
            entry, _ = await submit(self.redis, cmd)
        except NotNow as exc:
            raise HTTPException(409, str(exc)) from None
        except (RedisError, OSError) as exc:
            raise _down(exc) from None
        if source is Source.SUPERVISOR:
            note(request, f"agent {agent_id} {op}{' ' + reason if reason else ''} by supervisor")
            log.info("agent %s: %s by supervisor %s", agent_id, op, user.name)
        return Sent(entry=entry, **{**cmd.fields(), "reason": reason, "at": cmd.at})

    async def follow(self, stop: asyncio.Event | None = None) -> None:
        """Push every agent state change in :data:`LOG` to that agent's feed (from now on);
        Redis trouble is retried, a malformed entry skipped with a log line."""
        last = "$"
        while stop is None or not stop.is_set():
            try:
                got = await self.redis.xread({LOG: last}, count=200, block=FOLLOW_BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("agent state feed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_S)
                continue
            for _stream, entries in got or ():
                for entry_id, raw in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        e = parse_entry(entry_id, raw)
                    except BadEntry as exc:
                        log.warning("acd:log entry skipped: %s", exc)
                        continue
                    if e.state:
                        event = {"event": "agent_state", "agent": e.agent, "state": e.state}
                        event |= {"reason": e.reason or None, "call": e.call or None}
                        self.hub.publish(e.agent, event | {"since": e.t})


def _down(exc: BaseException) -> HTTPException:
    log.warning("ACD state store unavailable: %s: %s", type(exc).__name__, exc)
    return HTTPException(503, "坐席状态服务不可用 (the ACD's Redis is down); nothing was changed")


def router(desk: AgentDesk) -> APIRouter:
    """The agent state routes over ``desk``."""
    responses: dict[int | str, dict[str, Any]] = {
        **ERRORS,
        404: {"model": Problem, "description": "no such agent in the config"},
        409: {"model": Problem, "description": "the command does not fit the agent's state"},
        503: {"model": Problem, "description": "the ACD's Redis is down; nothing was sent"},
    }
    r = APIRouter(prefix="/api/agents/{agent_id}", responses=responses)

    @r.get("/state")
    async def state(agent_id: str, _: Who) -> AgentStateView:
        return await desk.view(agent_id)

    @r.post("/login", status_code=202)
    async def login(agent_id: str, request: Request, user: Who) -> Sent:
        return await desk.command(request, agent_id, user, Op.LOGIN)

    @r.post("/logout", status_code=202)
    async def logout(agent_id: str, request: Request, user: Who) -> Sent:
        return await desk.command(request, agent_id, user, Op.LOGOUT)

    @r.post("/ready", status_code=202)
    async def ready(agent_id: str, request: Request, user: Who) -> Sent:
        return await desk.command(request, agent_id, user, Op.READY)

    @r.post("/not-ready", status_code=202)
    async def not_ready(agent_id: str, body: NotReady, request: Request, user: Who) -> Sent:
        return await desk.command(request, agent_id, user, Op.NOT_READY, body.reason)

    return r


def mount(app: FastAPI, config: HotlineConfig, hub: FeedHub, redis: Any = None) -> AgentDesk:
    """Add the routes to ``app`` and run the feed follower for the app's lifetime."""
    desk = AgentDesk(config, hub, redis)
    app.include_router(router(desk))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(desk.follow())
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                if desk.records is not None:
                    await desk.records.close()
                if redis is None and desk._redis is not None:
                    with contextlib.suppress(Exception):
                        await desk._redis.aclose()

    app.router.lifespan_context = lifespan
    return desk
