"""From the speech service's published message to the stored ticket draft (issue 3).

The speech service publishes one message per listen (``hotline:draft:<call_id>``, see
:mod:`speech.service`): recogniser facts plus ``fields`` (:func:`speech.fields.extract`).  What
the ticket store keeps (:meth:`tickets.TicketStore.save_draft`) is flatter: the extracted
fields at the top level, the *masked* transcript (identity and bank card numbers hidden,
第二十条; the raw recogniser text is not stored), a reference to the captured audio, and the
caller's number (the store hashes and encrypts it).

:func:`keep_call_draft` is what the IVR runs in the background after a Listen: it waits for the
message longer than the caller does (a draft finished after the caller moved on is still kept)
and stores it; it never raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from hotline.call import DRAFT_KEY, TicketDraft

log = logging.getLogger("speech.drafts")

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
    redis: Any,
    store: DraftStore,
    call_id: str,
    caller: str = "",
    wait_s: float = LATE_DRAFT_S,
    listen_id: str | None = None,
) -> dict[str, Any] | None:
    """Wait (at most ``wait_s``) for the call's draft in Redis — the one of ``listen_id`` when
    given, so a call with several listens stores each listen's own draft — and store it; the
    stored record, or ``None`` when none came or storing failed (logged).  Never raises."""
    from speech.service import speech_service_alive, wait_for_draft

    try:
        if not await speech_service_alive(redis) and not await redis.exists(
            DRAFT_KEY.format(call_id=call_id)
        ):
            return None  # nobody listened: nothing will come
        message = await wait_for_draft(redis, call_id, wait_s, listen_id)
        if message is None:
            log.info("call %s: no draft within %.0f s; nothing stored", call_id, wait_s)
            return None
        record = stored_draft(message, caller)
        async with asyncio.timeout(STORE_TIMEOUT_S):
            await store.save_draft(call_id, record)
        log.info("call %s: draft stored (%s)", call_id, record.get("seat"))
        return record
    except Exception as exc:  # the call never depends on this
        log.warning("call %s: draft not stored (%s: %s)", call_id, type(exc).__name__, exc)
        return None


class DraftKeeper:
    """Implements :class:`agi_scripts.services.DraftKeeper`: one background
    :func:`keep_call_draft` per listen; the call never waits on it."""

    def __init__(self, redis: Any, store: DraftStore, wait_s: float = LATE_DRAFT_S) -> None:
        self.redis = redis
        self.store = store
        self.wait_s = wait_s

    def keep(self, call_id: str, caller: str, listen_id: str) -> None:
        task = asyncio.create_task(
            keep_call_draft(self.redis, self.store, call_id, caller, self.wait_s, listen_id)
        )
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
