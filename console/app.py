"""The console's HTTP API (FastAPI).

Agents (``console.token``; a supervisor's token works too)::

    GET   /api/agents/{agent}/feed            SSE: call (answered: draft, caller flag, IVR path,
                                              seat), draft (finished later), hangup
    WS    /api/agents/{agent}/ws?token=       the same events over a WebSocket
    GET   /api/agents/{agent}/current         the call on the agent's screen, or null
    GET   /api/drafts/{call_id}               the draft (numbers masked) and the call's facts
    PATCH /api/drafts/{call_id}               {"who": "1002", "fields": {"seat": "gjj", ...}}
    GET   /api/calls/{call_id}/callback       the caller's and the spoken callback number, in
                                              full (第二十条: only here), logged with ?agent=
    POST  /api/calls/{call_id}/harassment     {"by": "1002", "note": "..."} (第二十九条)

Supervisors (``console.supervisor_token``)::

    POST /api/supervisor/callers/harassment   {"caller", "by", "note", "call_id"?}
    POST /api/supervisor/callers/lift         {"caller", "by", "why", "clear_referral"?}
    GET  /api/supervisor/audit[?caller=]      audit records (numbers masked)
    GET  /api/supervisor/referrals            callers listed for referral
    GET  /api/supervisor/corrections          agents' corrections and per-field accuracy
    GET  /api/stats/demand[?since=&until=]    第二十一条: demands by district, seat, type, hour

The token goes in ``Authorization: Bearer …`` (or ``?token=`` for EventSource, which cannot set
headers).  Bad input is a 4xx with a reason and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    Body,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import HTMLResponse, StreamingResponse

from console import stats as stats_mod
from console.feed import FeedHub, sse
from console.views import draft_view
from hotline.config import EMERGENCY_LINES, HotlineConfig
from hotline.privacy import mask
from tickets.api import add_ticket_error_handlers
from tickets.model import TicketError, TicketNotFound, TicketStoreUnavailable

log = logging.getLogger("console")

KEEPALIVE_S = 15.0
DEMAND_TYPES = ("咨询", "投诉", "举报", "建议", "求助", "表扬")
JsonBody = Annotated[dict[str, Any], Body()]
PAGE = Path(__file__).with_name("agent.html")


class Services:
    """What the API works with; any of them may be ``None`` (that part answers 503)."""

    def __init__(
        self,
        store: Any = None,
        throttle: Any = None,
        follower: Any = None,
        hub: FeedHub | None = None,
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.follower = follower
        self.hub = hub or FeedHub()


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token", "")


def _same(given: str, secret: str | None) -> bool:
    return bool(secret) and hmac.compare_digest(given.encode(), str(secret).encode())


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
            raise TicketError(f"{name}: {value!r} is not one of {choices} (or null)")
    return fields


def make_app(config: HotlineConfig, services: Services | None = None) -> FastAPI:
    """The console app; without ``services`` they are built from ``config`` at start-up."""
    own = services is None
    sv = services or Services()
    agents = {a.id for a in config.agents}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        redis = None
        if own:
            redis = await _build(config, sv)
            task = asyncio.create_task(sv.follower.run())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            for closer in (sv.store, sv.throttle, redis):
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await (closer.aclose() if closer is redis else closer.close())

    app = FastAPI(title="12345 agent console", version="1", lifespan=lifespan)
    app.state.services = sv

    def agent_auth(request: Request) -> None:
        given = _token(request)
        c = config.console
        if not (_same(given, c.token) or _same(given, c.supervisor_token)):
            raise HTTPException(401, "a valid console token is required")

    def supervisor_auth(request: Request) -> None:
        if not _same(_token(request), config.console.supervisor_token):
            raise HTTPException(401, "a valid supervisor token is required")

    def need(thing: Any, what: str) -> Any:
        if thing is None:
            raise HTTPException(503, f"{what} is not available")
        return thing

    def known_agent(agent_id: str) -> str:
        if agent_id not in agents:
            raise HTTPException(404, f"no agent {agent_id!r} in the config")
        return agent_id

    add_ticket_error_handlers(app)

    agent_dep = [Depends(agent_auth)]
    sup_dep = [Depends(supervisor_auth)]

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        f = sv.follower
        return {
            "ok": True,
            "ami_connected": bool(f and f.ami_connected),
            "redis_connected": bool(f and f.redis_connected),
        }

    # ---- agents -------------------------------------------------------------------------
    @app.get("/api/agents/{agent_id}/feed", dependencies=agent_dep)
    async def feed(agent_id: str, request: Request) -> StreamingResponse:
        known_agent(agent_id)
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
    async def feed_ws(websocket: WebSocket, agent_id: str) -> None:
        """The same events as the SSE feed, as JSON WebSocket messages (``?token=``)."""
        c = config.console
        given = websocket.query_params.get("token", "")
        if not (_same(given, c.token) or _same(given, c.supervisor_token)):
            await websocket.close(code=1008, reason="a valid console token is required")
            return
        if agent_id not in agents:
            await websocket.close(code=1008, reason=f"no agent {agent_id!r} in the config")
            return
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

    @app.get("/api/agents/{agent_id}/current", dependencies=agent_dep)
    async def current(agent_id: str) -> dict[str, Any]:
        return {"call": sv.hub.current.get(known_agent(agent_id))}

    @app.get("/api/drafts/{call_id}", dependencies=agent_dep)
    async def get_draft(call_id: str) -> dict[str, Any]:
        store = need(sv.store, "the ticket store")
        draft = await store.get_draft(call_id)
        rec = sv.follower.call(call_id) if sv.follower is not None else None
        if draft is None and rec is None:
            raise TicketNotFound(f"no draft for call {call_id!r}")
        call = sv.follower.screen(rec, None) if rec is not None else None
        if call is not None:
            call.pop("draft")
        return {"call_id": call_id, "draft": draft_view(draft), "call": call}

    @app.patch("/api/drafts/{call_id}", dependencies=agent_dep)
    async def correct(call_id: str, body: JsonBody) -> dict[str, Any]:
        store = need(sv.store, "the ticket store")
        who = body.get("who")
        if not isinstance(who, str) or not who.strip():
            raise TicketError("'who' (the agent correcting) is required")
        fields = check_fields(config, body.get("fields"))
        if await store.get_draft(call_id) is None:
            raise TicketNotFound(f"no draft for call {call_id!r}")
        draft = None
        for name, value in fields.items():
            draft = await store.correct_draft(call_id, name, value, who.strip())
        log.info("draft %s corrected by %s: %s", call_id, who, ", ".join(fields))
        return {"call_id": call_id, "draft": draft_view(draft)}

    async def caller_of(call_id: str) -> str:
        rec = sv.follower.call(call_id) if sv.follower is not None else None
        if rec is not None and rec.caller:
            return rec.caller
        draft = await sv.store.get_draft(call_id) if sv.store is not None else None
        if draft and draft.get("caller"):
            return str(draft["caller"])
        raise TicketNotFound(f"no caller number known for call {call_id!r}")

    @app.get("/api/calls/{call_id}/callback", dependencies=agent_dep)
    async def callback(call_id: str, agent: Annotated[str, Query(min_length=1)]) -> dict:
        known_agent(agent)
        caller = await caller_of(call_id)
        draft = await sv.store.get_draft(call_id) if sv.store is not None else None
        spoken = (draft or {}).get("callback")
        log.info("call %s: numbers for the callback read by agent %s", call_id, agent)
        return {"call_id": call_id, "caller": caller, "callback": spoken or caller}

    @app.post("/api/calls/{call_id}/harassment", dependencies=agent_dep)
    async def flag_call(call_id: str, body: JsonBody) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        by, note = body.get("by"), body.get("note", "")
        if not isinstance(by, str) or not by.strip() or not isinstance(note, str):
            raise TicketError("a flag is {'by': agent, 'note': text}")
        caller = await caller_of(call_id)
        flags = await _rules(throttle.flag_harassment(caller, by, note, call_id))
        return {"call_id": call_id, "caller": mask(caller), "flags": flags}

    # ---- supervisors --------------------------------------------------------------------
    @app.post("/api/supervisor/callers/harassment", dependencies=sup_dep)
    async def flag_caller(body: JsonBody) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        caller, by, note = body.get("caller"), body.get("by"), body.get("note", "")
        if not all(isinstance(v, str) for v in (caller, by, note)):
            raise TicketError("a flag is {'caller', 'by', 'note'} (strings)")
        call_id = str(body.get("call_id") or "")
        flags = await _rules(throttle.flag_harassment(caller, by, note, call_id))
        return {"caller": mask(caller), "flags": flags}

    @app.post("/api/supervisor/callers/lift", dependencies=sup_dep)
    async def lift(body: JsonBody) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        caller, by, why = body.get("caller"), body.get("by"), body.get("why")
        if not all(isinstance(v, str) for v in (caller, by, why)):
            raise TicketError("a lift is {'caller', 'by', 'why'} (strings)")
        clear = bool(body.get("clear_referral", False))
        was = await _rules(throttle.lift(caller, by, why, clear_referral=clear))
        return {"caller": mask(caller), "was": was}

    @app.get("/api/supervisor/audit", dependencies=sup_dep)
    async def audit(
        caller: str | None = None, count: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        records = await _rules(throttle.audit(caller, count))
        return {"records": [asdict(r) for r in records]}

    @app.get("/api/supervisor/referrals", dependencies=sup_dep)
    async def referrals() -> dict[str, Any]:
        throttle = need(sv.throttle, "the caller rules")
        return {"referrals": [asdict(r) for r in await _rules(throttle.referrals())]}

    @app.get("/api/supervisor/corrections", dependencies=sup_dep)
    async def corrections(call_id: str | None = None) -> dict[str, Any]:
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

    @app.get("/api/stats/demand", dependencies=sup_dep)
    async def demand(since: str | None = None, until: str | None = None) -> dict[str, Any]:
        if config.tickets.backend != "sqlite":
            raise HTTPException(501, "statistics read the SQLite ticket store")
        try:
            records = await asyncio.to_thread(stats_mod.rows, config.tickets.path)
            return stats_mod.demand_stats(records, config.business_hours.timezone, since, until)
        except stats_mod.StatsError as exc:
            raise TicketError(str(exc)) from None

    return app


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
    from console.follow import CallFollower
    from tickets import open_store

    redis = Redis(**config.redis.client_kwargs(), socket_connect_timeout=2.0)  # type: ignore[arg-type]
    sv.store = sv.store or open_store(config)
    try:
        sv.throttle = sv.throttle or Throttle.from_config(config)
    except Exception as exc:  # the console still shows drafts
        log.error("caller rules unavailable in the console: %s", exc)
    sv.follower = sv.follower or CallFollower(config, sv.hub, sv.store, redis)
    return redis
