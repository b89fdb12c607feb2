"""From the speech service's published message to the stored ticket draft (issue 3).

The speech service publishes one message per listen (see :mod:`speech.service`): recogniser
facts plus ``fields`` (:func:`speech.fields.extract`), and writes it as a ``draft`` event on
the call event stream (``calls.stream``), already in the stored shape.  What the ticket store
keeps (:meth:`tickets.TicketStore.save_draft`) is flatter: the extracted fields at the top
level, the *masked* transcript (identity and bank card numbers hidden, 第二十条; the raw
recogniser text is not stored), a reference to the captured audio, and the
caller's number (the store hashes and encrypts it).

:func:`keep_call_draft` is what the IVR runs in the background after a Listen: it waits for
the listen's ``draft`` event on the call event stream longer than the caller does (a draft
finished after the caller moved on is still kept) and stores it; it never raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hotline.call import CallEvent, TicketDraft

if TYPE_CHECKING:
    from calls.stream import CallStream

log = logging.getLogger("speech.drafts")

LOOKBACK_S = 600.0
"""How far back (before the keeper starts) the listen's draft event is looked for."""
LATE_DRAFT_S = 60.0
"""How long the background keeper waits for a draft after the caller moved on."""
STORE_TIMEOUT_S = 5.0
_BACKGROUND: set[asyncio.Task[object]] = set()
"""Draft keepers still waiting after their call left the IVR."""


class DraftStore(Protocol):
    async def save_draft(self, call_id: str, draft: Mapping[str, Any]) -> None: ...


def stored_draft(message: Mapping[str, Any], caller: str = "") -> dict[str, Any]:
    """The record to store for one published speech message (see the module docstring)."""
    draft = TicketDraft.parse(message) or TicketDraft(call_id="")
    return draft.stored(caller)


async def keep_call_draft(
    stream: CallStream,
    store: DraftStore,
    call_id: str,
    caller: str = "",
    wait_s: float = LATE_DRAFT_S,
    listen_id: str | None = None,
    since: float | None = None,
) -> dict[str, Any] | None:
    """Wait (at most ``wait_s``) for the call's ``draft`` event on the call event stream,
    written at or after ``since`` (default: :data:`LOOKBACK_S` ago) — the one of
    ``listen_id`` when given, so a call with several listens stores each listen's own draft —
    and store it with the caller's number; the stored record, or ``None`` when none came or
    storing failed (logged).  Never raises."""
    from speech.service import speech_service_alive

    def mine(event: CallEvent) -> bool:
        draft = event.data.get("draft")
        return (
            event.kind == "draft"
            and event.call_id == call_id
            and isinstance(draft, dict)
            and (listen_id is None or draft.get("listen_id") == listen_id)
        )

    try:
        start = time.time() - LOOKBACK_S if since is None else since
        alive = await speech_service_alive(stream.redis)
        event = await stream.find(mine, start, wait_s if alive else 0.0)  # dead: nothing comes
        if event is None:
            if alive:
                log.info("call %s: no draft within %.0f s; nothing stored", call_id, wait_s)
            return None
        record = dict(event.data["draft"])
        if caller:
            record["caller"] = caller
        async with asyncio.timeout(STORE_TIMEOUT_S):
            await store.save_draft(call_id, record)
        log.info("call %s: draft stored (%s)", call_id, record.get("seat"))
        return record
    except Exception as exc:  # the call never depends on this
        log.warning("call %s: draft not stored (%s: %s)", call_id, type(exc).__name__, exc)
        return None


class DraftKeeper:
    """Implements :class:`agi_scripts.services.DraftKeeper`: one background
    :func:`keep_call_draft` per listen, reading the call event stream; the call never waits
    on it."""

    def __init__(self, stream: CallStream, store: DraftStore, wait_s: float = LATE_DRAFT_S) -> None:
        self.stream = stream
        self.store = store
        self.wait_s = wait_s

    def keep(self, call_id: str, caller: str, listen_id: str, since: float | None = None) -> None:
        task = asyncio.create_task(
            keep_call_draft(self.stream, self.store, call_id, caller, self.wait_s, listen_id, since)
        )
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
