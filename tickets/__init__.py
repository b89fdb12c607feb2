"""The ticket store (第十四条 progress, drafts and their corrections).

``open_store(config)`` gives the configured backend: SQLite (default) or a city's ticket
system over HTTP.  :func:`open_demands_safely` is what the call path uses: it never raises.
"""

from __future__ import annotations

import asyncio
import logging

from hotline.config import HotlineConfig
from tickets.model import (
    Correction,
    Draft,
    Status,
    Ticket,
    TicketError,
    TicketNotFound,
    TicketStore,
    TicketStoreUnavailable,
)

__all__ = [
    "Correction",
    "Draft",
    "Status",
    "Ticket",
    "TicketError",
    "TicketNotFound",
    "TicketStore",
    "TicketStoreUnavailable",
    "open_demands_safely",
    "open_store",
]

log = logging.getLogger(__name__)


def open_store(config: HotlineConfig) -> TicketStore:
    """The ticket store named by ``config.tickets``."""
    t = config.tickets
    if t.backend == "http":
        from tickets.http import HttpTicketStore

        if not t.url:
            raise TicketError("tickets.backend is 'http' but tickets.url is not set")
        return HttpTicketStore(t.url, timeout_ms=t.timeout_ms)
    from tickets.sqlite import SqliteTicketStore

    return SqliteTicketStore.from_config(config)


async def open_demands_safely(
    store: TicketStore, caller: str, timeout_s: float = 1.0
) -> list[Ticket]:
    """The caller's open demands, or ``[]`` if the store fails or is slow (logged): a
    ticket-system outage must not keep a caller from the menu."""
    try:
        return await asyncio.wait_for(store.open_demands(caller), timeout_s)
    except Exception as exc:  # fail open for the caller
        log.warning(
            "tickets: open_demands failed (%s: %s); caller goes on", type(exc).__name__, exc
        )
        return []
