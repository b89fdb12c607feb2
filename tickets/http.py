"""A ticket store that is a city's own ticket system, reached over a small JSON API.

The API (``tickets/api.py`` serves it over any store; a city implements it in front of its
工单 system).  All bodies are JSON, UTF-8.  Caller numbers travel only in request bodies, never
in URLs (URLs end up in access logs; 第二十条).  Use HTTPS outside loopback.

==========================================  =========================================
``POST /demands/search`` ``{"caller"}``     200 ``{"tickets": [Ticket, …]}`` newest first
``POST /tickets`` draft                     201 Ticket
``PATCH /tickets/{id}`` ``{"status","who"}``  200 Ticket
``PUT /drafts/{call_id}`` draft             204
``GET /drafts/{call_id}``                   200 ``{"draft": {…}}`` or 404
``POST /drafts/{call_id}/corrections``      200 ``{"draft": {…}}``
``{"field","value","who"}``
==========================================  =========================================

Ticket: ``{"id", "caller", "created_at" (ISO 8601 with offset), "status" (accepted |
in_progress | done), "feedback_due" (YYYY-MM-DD), "seat", "department", "summary",
"call_id"}``.  Errors: 4xx with ``{"detail": "..."}`` → :class:`TicketError` (bad input,
nothing changed); 5xx, time-out, refused → :class:`TicketStoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from tickets.model import (
    Draft,
    Status,
    Ticket,
    TicketError,
    TicketNotFound,
    TicketStoreUnavailable,
)


class HttpTicketStore:
    """:class:`tickets.model.TicketStore` over the JSON API above."""

    def __init__(
        self, base_url: str, *, timeout_ms: int = 2000, client: httpx.AsyncClient | None = None
    ) -> None:
        """``client``: an ``httpx.AsyncClient`` to use instead (its own base URL is kept if set,
        e.g. one with an in-process ASGI transport)."""
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_ms / 1000))
        if not str(self._client.base_url).strip("/"):
            self._client.base_url = httpx.URL(base_url)

    async def _call(
        self, method: str, path: str, body: object | None = None, *, ok_404: bool = False
    ) -> Any:
        try:
            r = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise TicketStoreUnavailable(f"ticket API {method} {path}: {exc!r}") from exc
        if r.status_code == 404:
            if ok_404:
                return None
            raise TicketNotFound(f"ticket API {method} {path}: {_detail(r)}")
        if 400 <= r.status_code < 500:
            raise TicketError(f"ticket API {method} {path}: {r.status_code} {_detail(r)}")
        if r.status_code >= 500:
            raise TicketStoreUnavailable(f"ticket API {method} {path}: {r.status_code}")
        if r.status_code == 204:
            return None
        try:
            return r.json()
        except ValueError as exc:
            raise TicketStoreUnavailable(f"ticket API {method} {path}: not JSON") from exc

    async def open_demands(self, caller: str) -> list[Ticket]:
        data = await self._call("POST", "/demands/search", {"caller": caller})
        return [Ticket.from_json(t) for t in data["tickets"]]

    async def create(self, draft: Mapping[str, Any]) -> Ticket:
        return Ticket.from_json(await self._call("POST", "/tickets", dict(draft)))

    async def update_status(self, ticket_id: str, status: Status | str, who: str = "") -> Ticket:
        value = status.value if isinstance(status, Status) else Status.parse(status).value
        body = {"status": value, "who": who}
        return Ticket.from_json(await self._call("PATCH", f"/tickets/{_seg(ticket_id)}", body))

    async def save_draft(self, call_id: str, draft: Mapping[str, Any]) -> None:
        await self._call("PUT", f"/drafts/{_seg(call_id)}", dict(draft))

    async def get_draft(self, call_id: str) -> Draft | None:
        data = await self._call("GET", f"/drafts/{_seg(call_id)}", ok_404=True)
        return None if data is None else data["draft"]

    async def correct_draft(self, call_id: str, field: str, value: Any, who: str) -> Draft:
        body = {"field": field, "value": value, "who": who}
        data = await self._call("POST", f"/drafts/{_seg(call_id)}/corrections", body)
        return data["draft"]

    async def close(self) -> None:
        await self._client.aclose()


def _seg(value: str) -> str:
    if not value:
        raise TicketError("empty id")
    return quote(value, safe="")


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))
    except ValueError:
        return r.text[:200]
