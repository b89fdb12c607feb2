"""The supervisors' pages in the console: the live wallboard (SSE), the reports (JSON, CSV)
and ``/metrics`` (Prometheus).  Mounted by :func:`mount_supervise`, which also starts and
stops the one :class:`supervise.board.Board` of the process with the app.

Supervisor role only (others: 401/403, audited by ``access``)::

    GET /wallboard, /reports                       the pages (log in on the page)
    GET /api/supervisor/wallboard                  the current figures and alerts (JSON)
    GET /api/supervisor/wallboard/feed           SSE: ``board`` events (figures + alerts)
    GET /api/supervisor/reports?period=day|week|month&date=YYYY-MM-DD[&format=csv]

``GET /metrics``: Prometheus text; loopback (``supervise.metrics_allow_from``) or
``Authorization: Bearer <supervise.metrics_token>``; anyone else 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from access.store import User
from access.web import ERRORS, require
from hotline.config import HotlineConfig
from hotline.peers import Peers, network
from supervise.board import Board
from supervise.metrics import CONTENT_TYPE, HotlineMetrics
from supervise.reports import ReportError, build_report, period_bounds, report_csv
from supervise.sources import agent_events, call_records

IS_SUPERVISOR = require("supervisor")
KEEPALIVE_S = 15.0
SCRIPT = Path(__file__).with_name("supervisor.js")
PAGES = {
    "wallboard": Path(__file__).with_name("wallboard.html"),
    "reports": Path(__file__).with_name("reports.html"),
}


def mount_supervise(app: FastAPI, config: HotlineConfig, services: Any, own: bool) -> Board:
    """Add the supervisors' routes to ``app``.  The board is ``services.board`` when a test
    gives one, else built from ``config``; it starts and stops with the app when it was given
    or the app built its own services (``own``)."""
    given = getattr(services, "board", None)
    board: Board = given or Board.from_config(config)
    metrics = HotlineMetrics()
    metrics.attach(board)
    board.observe = metrics.observe
    app.include_router(_router(config, board, metrics))
    if given is None and not own:
        return board
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            await board.start()
            try:
                yield state
            finally:
                await board.stop()

    app.router.lifespan_context = lifespan
    return board


def _router(config: HotlineConfig, board: Board, metrics: HotlineMetrics) -> APIRouter:
    router = APIRouter()
    s = config.supervise
    allowed = Peers(tuple(network(n) for n in s.metrics_allow_from))

    @router.get("/supervisor.js", include_in_schema=False)
    async def script() -> Response:
        return Response(SCRIPT.read_text(encoding="utf-8"), media_type="text/javascript")

    for name, path in PAGES.items():
        router.add_api_route(
            f"/{name}", _page(path), response_class=HTMLResponse, include_in_schema=False
        )

    @router.get("/api/supervisor/wallboard", responses=ERRORS)
    async def wallboard(_: Annotated[User, Depends(IS_SUPERVISOR)]) -> dict[str, Any]:
        return board.snapshot()

    @router.get(
        "/api/supervisor/wallboard/feed",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    )
    async def stream(
        request: Request, _: Annotated[User, Depends(IS_SUPERVISOR)]
    ) -> StreamingResponse:
        q = board.subscribe()

        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):  # no task per message
                            message = await q.get()
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                    yield message
            finally:
                board.unsubscribe(q)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @router.get(
        "/api/supervisor/reports",
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}, **ERRORS},
    )
    async def reports(
        _: Annotated[User, Depends(IS_SUPERVISOR)],
        period: Annotated[str, Query(pattern="^(day|week|month)$")] = "day",
        date: Annotated[str | None, Query(max_length=10)] = None,
        as_: Annotated[str, Query(alias="format", pattern="^(json|csv)$")] = "json",
    ) -> Any:
        zone = board.model.zone
        try:
            start, end = period_bounds(period, date, zone, datetime.now(zone).date())
        except ReportError as exc:
            raise HTTPException(422, str(exc)) from None
        lo, hi = start.timestamp(), end.timestamp()
        records = await asyncio.to_thread(call_records, config.calls.path, lo, hi)
        history = await asyncio.to_thread(agent_events, config.calls.path, lo, hi)
        report = build_report(
            records,
            period,
            start,
            end,
            service_level_s=s.service_level_s,
            seat_names={seat.id: seat.name for seat in config.seats},
            agent_names={a.id: a.name for a in config.agents},
            agent_events=history,
            now=time.time(),
        )
        if as_ == "csv":
            name = f"hotline-{period}-{start.date().isoformat()}.csv"
            return Response(
                "\ufeff" + report_csv(report),  # a BOM: spreadsheets then read it as UTF-8
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return report

    @router.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        peer = request.client.host if request.client else None
        auth = request.headers.get("authorization", "")
        token_ok = (
            bool(s.metrics_token)
            and auth[:7].lower() == "bearer "
            and hmac.compare_digest(auth[7:].strip().encode(), str(s.metrics_token).encode())
        )
        if not (token_ok or allowed.allows(peer)):
            raise HTTPException(403, "metrics: not from an allowed address and no valid token")
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router


def _page(path: Path) -> Any:
    async def page() -> str:
        return path.read_text(encoding="utf-8")

    return page
