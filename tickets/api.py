"""The ticket JSON API (documented in :mod:`tickets.http`) served over any ticket store.

``make_app(store)`` is the reference server: a city can run it over the SQLite store, or
read it as the contract its own 工单 system must answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tickets.model import TicketError, TicketNotFound, TicketStore, TicketStoreUnavailable

JsonBody = Annotated[dict[str, Any], Body()]


TICKET_ERROR_STATUS: dict[type[Exception], int] = {
    TicketNotFound: 404,
    TicketError: 422,
    TicketStoreUnavailable: 503,
}
"""HTTP status for each ticket-store error (the most specific class wins)."""


def add_ticket_error_handlers(app: FastAPI) -> None:
    """Answer ticket-store errors with :data:`TICKET_ERROR_STATUS` and the error's text."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in TICKET_ERROR_STATUS.items() if isinstance(exc, cls))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    for cls in TICKET_ERROR_STATUS:
        app.add_exception_handler(cls, handler)


def make_app(store: TicketStore) -> FastAPI:
    """A FastAPI app exposing ``store`` over the ticket JSON API."""
    app = FastAPI(title="12345 ticket API", version="1")
    add_ticket_error_handlers(app)

    @app.post("/demands/search")
    async def search(body: JsonBody) -> dict[str, Any]:
        caller = body.get("caller")
        if not isinstance(caller, str):
            raise TicketError("'caller' must be a string")
        return {"tickets": [t.to_json() for t in await store.open_demands(caller)]}

    @app.post("/tickets", status_code=201)
    async def create(draft: JsonBody) -> dict[str, str]:
        return (await store.create(draft)).to_json()

    @app.patch("/tickets/{ticket_id}")
    async def update(ticket_id: str, body: JsonBody) -> dict[str, str]:
        status = body.get("status")
        if not isinstance(status, str):
            raise TicketError("'status' must be a string")
        who = body.get("who", "")
        return (await store.update_status(ticket_id, status, str(who))).to_json()

    @app.put("/drafts/{call_id}", status_code=204)
    async def save_draft(call_id: str, draft: JsonBody) -> Response:
        await store.save_draft(call_id, draft)
        return Response(status_code=204)

    @app.get("/drafts/{call_id}")
    async def get_draft(call_id: str) -> dict[str, Any]:
        draft = await store.get_draft(call_id)
        if draft is None:
            raise TicketNotFound(f"no draft for call {call_id!r}")
        return {"draft": draft}

    @app.post("/drafts/{call_id}/corrections")
    async def correct(call_id: str, body: JsonBody) -> dict[str, Any]:
        field, who = body.get("field"), body.get("who")
        if not isinstance(field, str) or not isinstance(who, str) or "value" not in body:
            raise TicketError("a correction is {'field': str, 'value': any, 'who': str}")
        return {"draft": await store.correct_draft(call_id, field, body["value"], who)}

    return app
