"""The console's HTTP API (FastAPI).  Every ``/api/`` request but login and health needs a
session (:mod:`access.web`: cookie or bearer token from ``POST /api/login``); each endpoint
names the roles that may call it (one dependency), and every request is audited.

Agents (role ``agent``, the config's agent id from the session)::

    GET   /api/agents/{agent}/feed            SSE, own feed only: call (answered: draft, caller
                                              flag, IVR path, seat), draft (later), hangup
    WS    /api/agents/{agent}/ws              the same events over a WebSocket (cookie/bearer)
    GET   /api/agents/{agent}/current         the call on the agent's own screen, or null
    GET   /api/calls/{call_id}/callback       the caller's and the spoken callback number, in
                                              full (第二十条: only here, only the agent on the
                                              call, audited)
    POST  /api/calls/{call_id}/harassment     {"note", "request_id"} (第二十九条; agent on the
                                              call, or a supervisor)
    POST  /api/calls/{call_id}/kb             {"action": "answered", "article"} 直接答复 or
                                              {"action": "referred", "department"} 流转交办:
                                              into the call record (agent on the call)

Knowledge base (``console/kb.py``): ``/api/kb/…`` of ``kb/api.py``.

Agent state (``console/agent_state.py``): ``/api/agents/{agent}/state``, ``…/login``,
``…/logout``, ``…/ready``, ``…/not-ready``.
Waiting calls (``console/acd_calls.py``, supervisors): ``GET /api/acd/calls``,
``POST /api/acd/calls/{call_id}/priority``, page ``/supervisor/queue``.
QA (``console/qa.py``, roles qa and supervisor): ``/qa`` and ``/api/qa/…`` (recordings,
transcripts, scores).

Drafts (agent, supervisor, qa read; agent, supervisor correct)::

    GET   /api/drafts/{call_id}               the draft (numbers masked) and the call's facts
    PATCH /api/drafts/{call_id}               {"fields": {"seat": "gjj", ...}}

Supervisors (role ``supervisor``; statistics also ``qa`` and ``department``)::

    POST /api/supervisor/callers/harassment   {"caller", "note", "request_id", "call_id"?}
    POST /api/supervisor/callers/lift         {"caller", "why", "clear_referral"?}
    GET  /api/supervisor/audit[?caller=]      caller-rule audit records (numbers masked)
    GET  /api/supervisor/referrals            callers listed for referral
    GET  /api/supervisor/corrections          agents' corrections and per-field accuracy (+qa)
    GET  /api/stats/demand[?since=&until=]    第二十一条: demands by district, seat, type, hour

Bad input is a 4xx with a reason and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection

from access.store import AccessStore, User
from access.web import ERRORS, Problem, note, protect, require
from admin.lifecycle import Lifecycle
from console import acd_calls, agent_state, notices
from console import stats as stats_mod
from console.admin import admin_router
from console.feed import FeedHub, sse
from console.kb import KbSlot, mount
from console.qa import mount as mount_qa
from console.spy import mount_spy
from console.views import draft_view
from console.wallboard import mount_supervise
from hotline.call import CallEvent
from hotline.config import EMERGENCY_LINES, HotlineConfig
from hotline.privacy import mask
from kb.boot import calibration
from kb.model import ID_RE, MAX_DEPARTMENT, KbError, KbUnavailable
from tickets.api import add_ticket_error_handlers
from tickets.model import TicketError, TicketNotFound, TicketStoreUnavailable

log = logging.getLogger("console")

KEEPALIVE_S = 15.0
DEMAND_TYPES = ("咨询", "投诉", "举报", "建议", "求助", "表扬")
NOTE_MAX = 500
"""Longest harassment note or lift reason (characters)."""
PAGE = Path(__file__).with_name("agent.html")
REQUEST_ID = r"^[A-Za-z0-9_.:-]{8,64}$"
CALLER = Field(min_length=1, max_length=32)

IS_AGENT = require("agent")
READS_DRAFTS = require("agent", "supervisor", "qa")
CORRECTS_DRAFTS = require("agent", "supervisor")
FLAGS_CALLS = require("agent", "supervisor")
IS_SUPERVISOR = require("supervisor")
READS_CORRECTIONS = require("supervisor", "qa")
READS_STATS = require("supervisor", "qa", "department")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {c: v for c, v in ERRORS.items()}
    for code, why in (
        (404, "no such call, draft or agent"),
        (501, "not kept by this ticket store"),
        (503, "the ticket store or the caller rules (Redis) are down"),
    ):
        if code in codes:
            out[code] = {"model": Problem, "description": why}
    return out


def _flagging(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A flag's answers: 201 stored now, 200 a retry of a stored one, 503 nothing stored."""
    retry = {"model": Flagged, "description": "a retry: this request id was already stored"}
    return {200: retry, **_errors(*codes, 503)}


class Correction(BaseModel):
    """Fields of a draft to change, name → new value (who changed them is the session's user;
    a body that claims a ``who`` is refused)."""

    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(min_length=1, max_length=20)


class CallFlag(BaseModel):
    """A harassment flag on a call.  ``request_id`` (e.g. a UUID) makes a retry harmless."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=NOTE_MAX)
    request_id: str = Field(pattern=REQUEST_ID)


class CallerFlag(CallFlag):
    caller: str = CALLER
    call_id: str | None = Field(default=None, max_length=64)


class Lift(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: str = CALLER
    why: str = Field(min_length=1, max_length=NOTE_MAX)
    clear_referral: bool = False


class KbMark(BaseModel):
    """The agent's knowledge-base outcome: ``answered`` from a published article (直接答复),
    or ``referred`` to a department (流转交办), optionally naming the article consulted."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["answered", "referred"]
    article: str | None = Field(default=None, pattern=ID_RE.pattern)
    department: str | None = Field(
        default=None, min_length=1, max_length=MAX_DEPARTMENT, pattern=r"^[^\x00-\x1f\x7f]+$"
    )


class Flagged(BaseModel):
    """``flags``: the caller's flags in the window (null when it could not be read back)."""

    caller: str
    call_id: str | None = None
    flags: int | None
    replayed: bool = False
    """True: this request id was already stored; nothing was added."""


class Services:
    """What the API works with; any of them may be ``None`` (that part answers 503)."""

    def __init__(
        self,
        store: Any = None,
        throttle: Any = None,
        follower: Any = None,
        hub: FeedHub | None = None,
        kb: KbSlot | None = None,
        calls: Any = None,
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.follower = follower
        self.hub = hub or FeedHub()
        self.kb = kb
        """The knowledge base (``/api/kb`` and the screen-pop's articles)."""
        self.calls = calls
        """The call event stream (:class:`calls.stream.CallStream`): facts for the record."""


def check_fields(config: HotlineConfig, fields: object) -> dict[str, Any]:
    """A correction's ``fields``: a non-empty mapping whose known fields hold allowed values
    (seat ids, demand types, districts, emergency lines, out-of-scope rules)."""
    if not isinstance(fields, dict) or not fields:
        raise TicketError("'fields' must be a non-empty object of field → new value")
    allowed: dict[str, set[object]] = {
        "seat": {s.id for s in config.seats},
        "type": set(DEMAND_TYPES),
        "district": set(config.city.districts),
        "emergency": set(EMERGENCY_LINES),
        "out_of_scope": set(config.caller_rules.out_of_scope),
    }
    for name, value in fields.items():
        if name in allowed and value is not None and value not in allowed[name]:
            choices = ", ".join(sorted(str(a) for a in allowed[name]))
            raise TicketError(f"{name}: {value!r:.60} is not one of {choices} (or null)")
    return fields


def make_app(
    config: HotlineConfig,
    services: Services | None = None,
    *,
    access: AccessStore | None = None,
    admin: Lifecycle | None = None,
) -> FastAPI:
    """The console app; without ``services`` they are built from ``config`` at start-up,
    without ``access`` the config's users database is opened; with ``admin`` the admins'
    config page and API (``console/admin.py``)."""
    own = services is None
    sv = services or Services()
    users = access or AccessStore.from_config(config)
    threshold = None
    if config.kb.enabled:
        try:
            _, threshold = calibration(config)
        except KbError as exc:  # the console runs on without the knowledge base
            log.error("knowledge base disabled: %s", exc)
    if own and threshold is not None:
        sv.kb = KbSlot()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        redis = None
        if own:
            if sv.kb is not None:
                tasks.append(asyncio.create_task(sv.kb.load(config)))
            redis = await _build(config, sv)
            tasks.append(asyncio.create_task(sv.follower.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            # services the caller passed in are the caller's to close (a lifespan may stop
            # and start again, as schemathesis does between tests)
            closers = (sv.store, sv.throttle, redis) if own else ()
            if own and sv.kb is not None:
                sv.kb.close()
            for closer in closers:
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await (closer.aclose() if closer is redis else closer.close())

    app = FastAPI(title="12345 agent console", version="2", lifespan=lifespan)
    app.state.services = sv
    app.state.agents = frozenset(a.id for a in config.agents)
    protect(app, users, config.console.max_body_kb * 1024)
    add_ticket_error_handlers(app)
    if sv.kb is not None and threshold is not None:
        mount(app, sv.kb, threshold)
    agent_state.mount(app, config, sv.hub)
    acd_calls.mount(app, config)
    mount_supervise(app, config, sv, own)
    mount_spy(app, config, sv)
    mount_qa(app, config)
    if admin is not None:
        app.include_router(admin_router(admin))
    notices.mount(app, config, sv.kb)

    def need(thing: Any, what: str) -> Any:
        if thing is None:
            raise HTTPException(503, f"{what} is not available")
        return thing

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        f = sv.follower
        return {
            "ok": True,
            "ami_connected": bool(f and f.ami_connected),
            "redis_connected": bool(f and f.redis_connected),
            "kb_ready": bool(sv.kb is not None and sv.kb.kb is not None),
        }

    # ---- agents -------------------------------------------------------------------------
    @app.get(
        "/api/agents/{agent_id}/feed",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **_errors(404)},
    )
    async def feed(
        agent_id: Annotated[str, Depends(own_agent)], request: Request
    ) -> StreamingResponse:
        hub = sv.hub
        q = hub.subscribe(agent_id)

        async def stream() -> AsyncIterator[str]:
            try:
                yield sse({"event": "hello", "agent": agent_id})
                while True:
                    try:
                        event = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    yield sse(event)
            finally:
                hub.unsubscribe(agent_id, q)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.websocket("/api/agents/{agent_id}/ws")
    async def feed_ws(websocket: WebSocket, agent_id: Annotated[str, Depends(own_agent)]) -> None:
        """The same events as the SSE feed, as JSON WebSocket messages (session checked by
        the guard and ``own_agent`` before the connection is accepted)."""
        await websocket.accept()
        q = sv.hub.subscribe(agent_id)
        try:
            await websocket.send_json({"event": "hello", "agent": agent_id})
            while True:
                await websocket.send_json(await q.get())
        except WebSocketDisconnect:
            pass
        finally:
            sv.hub.unsubscribe(agent_id, q)

    @app.get("/api/agents/{agent_id}/current", responses=_errors(404))
    async def current(agent_id: Annotated[str, Depends(own_agent)]) -> dict[str, Any]:
        return {"call": sv.hub.current.get(agent_id)}

    @app.get("/api/drafts/{call_id}", responses=_errors(404, 503))
    async def get_draft(call_id: str, _: Annotated[User, Depends(READS_DRAFTS)]) -> dict[str, Any]:
        store = need(sv.store, "the ticket store")
        draft = await store.get_draft(call_id)
        rec = sv.follower.call(call_id) if sv.follower is not None else None
        if draft is None and rec is None:
            raise TicketNotFound(f"no draft for call {call_id[:64]!r}")
        call = sv.follower.screen(rec, None) if rec is not None else None
        if call is not None:
            call.pop("draft")
        return {"call_id": call_id, "draft": draft_view(draft), "call": call}

    @app.patch("/api/drafts/{call_id}", responses=_errors(404, 503))
    async def correct(
        call_id: str, body: Correction, user: Annotated[User, Depends(CORRECTS_DRAFTS)]
    ) -> dict[str, Any]:
        store = need(sv.store, "the ticket store")
        fields = check_fields(config, body.fields)
        if await store.get_draft(call_id) is None:
            raise TicketNotFound(f"no draft for call {call_id[:64]!r}")
        draft = None
        for name, value in fields.items():
            draft = await store.correct_draft(call_id, name, value, user.name)
        log.info("draft %s corrected by %s: %s", call_id, user.name, ", ".join(fields))
        return {"call_id": call_id, "draft": draft_view(draft)}

    async def caller_of(call_id: str) -> str:
        rec = sv.follower.call(call_id) if sv.follower is not None else None
        if rec is not None and rec.caller:
            return rec.caller
        draft = await sv.store.get_draft(call_id) if sv.store is not None else None
        if draft and draft.get("caller"):
            return str(draft["caller"])
        raise TicketNotFound(f"no caller number known for call {call_id[:64]!r}")

    @app.get("/api/calls/{call_id}/callback", responses=_errors(404, 503))
    async def callback(
        call_id: str, request: Request, user: Annotated[User, Depends(agent_on_call)]
    ) -> dict[str, Any]:
        caller = await caller_of(call_id)
        draft = await sv.store.get_draft(call_id) if sv.store is not None else None
        spoken = (draft or {}).get("callback")
        note(request, "caller and callback numbers read in full")
        log.info("call %s: numbers for the callback read by %s", call_id, user.name)
        return {"call_id": call_id, "caller": caller, "callback": spoken or caller}

    @app.post("/api/calls/{call_id}/harassment", status_code=201, responses=_flagging(404))
    async def flag_call(
        call_id: str, body: CallFlag, user: Annotated[User, Depends(on_call)]
    ) -> Flagged:
        throttle = need(sv.throttle, "the caller rules")
        caller = await caller_of(call_id)
        return await _flag(throttle, caller, user.name, body, call_id)

    @app.post("/api/calls/{call_id}/kb", status_code=201, responses=_errors(404, 503))
    async def kb_mark(
        call_id: str, body: KbMark, user: Annotated[User, Depends(agent_on_call)]
    ) -> dict[str, Any]:
        rec = sv.follower.call(call_id)
        fact: dict[str, Any] = {"action": body.action, "by": user.name}
        if body.article is not None:
            article = await _live_article(need(sv.kb, "the knowledge base"), body.article)
            fact |= {"article": article.id, "version": article.version, "title": article.title}
            fact["department"] = article.department
        if body.action == "answered" and body.article is None:
            raise TicketError("直接答复 names the article the answer came from ('article')")
        if body.action == "referred":
            if body.department is None:
                raise TicketError("流转交办 names the department ('department')")
            fact["department"] = body.department
        event = CallEvent("kb", rec.linkedid, time.time(), "console", data=fact)
        if await need(sv.calls, "the call event stream").publish(event) is None:
            raise TicketStoreUnavailable("not recorded (call event stream unavailable); retry")
        log.info("call %s: knowledge base %s by %s", rec.call_id, body.action, user.name)
        return {"call_id": rec.call_id, "kb": fact}

    # ---- supervisors --------------------------------------------------------------------
    @app.post("/api/supervisor/callers/harassment", status_code=201, responses=_flagging())
    async def flag_caller(
        body: CallerFlag, user: Annotated[User, Depends(IS_SUPERVISOR)]
    ) -> Flagged:
        throttle = need(sv.throttle, "the caller rules")
        return await _flag(throttle, body.caller, user.name, body, body.call_id or "")

    @app.post("/api/supervisor/callers/lift", responses=_errors(503))
    async def lift(body: Lift, user: Annotated[User, Depends(IS_SUPERVISOR)]) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        was = await _rules(
            throttle.lift(body.caller, user.name, body.why, clear_referral=body.clear_referral)
        )
        return {"caller": mask(body.caller), "was": was}

    @app.get("/api/supervisor/audit", responses=_errors(503))
    async def audit(
        _: Annotated[User, Depends(IS_SUPERVISOR)],
        caller: Annotated[str | None, Query(max_length=32)] = None,
        count: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        records = await _rules(throttle.audit(caller, count))
        return {"records": [asdict(r) for r in records]}

    @app.get("/api/supervisor/referrals", responses=_errors(503))
    async def referrals(_: Annotated[User, Depends(IS_SUPERVISOR)]) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        return {"referrals": [asdict(r) for r in await _rules(throttle.referrals())]}

    @app.get("/api/supervisor/corrections", responses=_errors(501, 503))
    async def corrections(
        _: Annotated[User, Depends(READS_CORRECTIONS)],
        call_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        store = need(sv.store, "the ticket store")
        if not hasattr(store, "corrections"):
            raise HTTPException(501, "this ticket store keeps no correction log")
        fixed = await store.corrections(call_id)
        accuracy = await store.field_accuracy() if call_id is None else None
        return {
            "corrections": [
                {
                    **asdict(c),
                    "at": c.at.isoformat(),
                    "old": _masked(c.field, c.old),
                    "new": _masked(c.field, c.new),
                }
                for c in fixed
            ],
            "field_accuracy": (
                {f: {"drafts": n, "corrected": k} for f, (n, k) in accuracy.items()}
                if accuracy is not None
                else None
            ),
        }

    @app.get("/api/stats/demand", responses=_errors(501))
    async def demand(
        _: Annotated[User, Depends(READS_STATS)],
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        if config.tickets.backend != "sqlite":
            raise HTTPException(501, "statistics read the SQLite ticket store")
        try:
            records = await asyncio.to_thread(stats_mod.rows, config.tickets.path)
            return stats_mod.demand_stats(records, config.business_hours.timezone, since, until)
        except stats_mod.StatsError as exc:
            raise TicketError(str(exc)) from None

    return app


def own_agent(agent_id: str, conn: HTTPConnection, user: Annotated[User, Depends(IS_AGENT)]) -> str:
    """The path's agent is the session's own (the feed is only for that agent)."""
    if agent_id != user.agent:
        raise _refused(conn, 403, f"user {user.name!r} is not agent {agent_id[:32]!r}")
    if agent_id not in conn.app.state.agents:
        raise _refused(conn, 404, f"no agent {agent_id[:32]!r} in the config")
    return agent_id


def on_call(
    call_id: str, conn: HTTPConnection, user: Annotated[User, Depends(FLAGS_CALLS)]
) -> User:
    """A supervisor, or the agent who is on this call now."""
    follower = conn.app.state.services.follower
    rec = follower.call(call_id) if follower is not None else None
    if user.role == "agent" and (rec is None or rec.agent != user.agent):
        raise HTTPException(403, "only the agent on this call (while it is up)")
    return user


def agent_on_call(
    call_id: str, conn: HTTPConnection, user: Annotated[User, Depends(IS_AGENT)]
) -> User:
    """The agent who is on this call now (not a supervisor)."""
    return on_call(call_id, conn, user)


def _refused(conn: HTTPConnection, status: int, why: str) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(1008, why)
    return HTTPException(status, why)


async def _flag(throttle: Any, caller: str, by: str, body: CallFlag, call_id: str) -> Any:
    """Flag ``caller`` once per request id, and say truthfully what was stored: 201 stored
    now, 200 stored by an earlier try of this request, 503 only when nothing was stored."""
    rid = body.request_id
    with contextlib.suppress(Exception):  # Redis trouble shows in the flag itself
        if await throttle.flag_stored(rid):
            out = Flagged(caller=mask(caller), call_id=call_id or None, flags=None, replayed=True)
            return JSONResponse(out.model_dump(), status_code=200)
    try:
        flags = await throttle.flag_harassment(caller, by, body.note, call_id, request_id=rid)
    except ValueError as exc:
        raise TicketError(str(exc)) from None
    except Exception as exc:  # the reply may be lost although Redis ran the script
        log.warning("harassment flag: %s: %s", type(exc).__name__, exc)
        stored = False
        with contextlib.suppress(Exception):
            stored = await throttle.flag_stored(rid)
        if not stored:
            raise TicketStoreUnavailable(
                "the flag was not stored (caller rules unavailable); retry with the same request_id"
            ) from None
        flags = None
    return Flagged(caller=mask(caller), call_id=call_id or None, flags=flags)


async def _live_article(kb: KbSlot, article_id: str) -> Any:
    """The published version of ``article_id`` (404 if none, 503 if the KB is down)."""
    try:
        article = await asyncio.to_thread(kb.store.live, article_id)
    except KbUnavailable as exc:
        raise TicketStoreUnavailable(str(exc)) from None
    if article is None:
        raise TicketNotFound(f"no published article {article_id!r}")
    return article


def _masked(field: str, value: object) -> object:
    return mask(str(value)) if field == "callback" and value else value


async def _rules(coro: Any) -> Any:
    """A caller-rules call: bad input → 422, Redis trouble → 503."""
    try:
        return await coro
    except ValueError as exc:
        raise TicketError(str(exc)) from None
    except Exception as exc:
        log.warning("caller rules failed: %s: %s", type(exc).__name__, exc)
        raise TicketStoreUnavailable(f"caller rules unavailable: {exc}") from None


async def _build(config: HotlineConfig, sv: Services) -> Any:
    """The real services for ``config``; returns the Redis client to close."""
    from redis.asyncio import Redis

    from callers.throttle import Throttle
    from calls.stream import CallStream
    from console.follow import CallFollower
    from tickets import open_store

    redis = Redis(**config.redis.client_kwargs(), socket_connect_timeout=2.0)  # type: ignore[arg-type]
    sv.store = sv.store or open_store(config)
    try:
        sv.throttle = sv.throttle or Throttle.from_config(config)
    except Exception as exc:  # the console still shows drafts
        log.error("caller rules unavailable in the console: %s", exc)
    c = config.calls
    sv.calls = sv.calls or CallStream(
        redis, maxlen=c.stream_maxlen, retention_s=c.retention_days * 86400
    )
    sv.follower = sv.follower or CallFollower(config, sv.hub, sv.store, redis, kb=sv.kb)
    return redis
