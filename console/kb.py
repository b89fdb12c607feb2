"""The knowledge base in the console: ``/api/kb`` (``kb.api``) for the console's users, and
the top articles for a caller's draft on the agent's screen-pop.

Roles map onto the knowledge base's own (:class:`kb.model.Role`): ``admin`` reviews and
publishes, ``department`` proposes for its department, ``agent`` searches and reads;
``supervisor`` and ``qa`` read and search like an agent (they change nothing).

The index is built once at start-up in a worker thread (seconds for the sample); until then
:class:`KbSlot` answers 503 and the screen-pop carries no articles.  A knowledge-base failure
never touches calls or the rest of the console.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from access.store import User
from access.web import ERRORS, Problem, require
from hotline.config import HotlineConfig
from kb.api import make_router
from kb.model import Actor, KbError, KbUnavailable, Role
from kb.service import KnowledgeBase

log = logging.getLogger("console.kb")

KB_USERS = require("admin", "department", "agent", "supervisor", "qa")
ROLES = {
    "admin": Role.ADMIN,
    "department": Role.DEPARTMENT,
    "agent": Role.AGENT,
    "supervisor": Role.AGENT,
    "qa": Role.AGENT,
}
SCREEN_ARTICLES = 3
"""Articles shown with a draft on the screen-pop."""
EXPIRY_SWEEP_S = 3600.0
"""How often articles past ``valid_until`` are marked expired and listed for their owner
(第十二条).  Searches filter by date on every read, so callers never hear an expired article
in between; the sweep makes the expiry visible in the store, its history and to the owner."""
EXPIRY_ACTOR = Actor("kb-expiry", Role.ADMIN)


def kb_actor(user: Annotated[User, Depends(KB_USERS)]) -> Actor:
    """The session's user as a knowledge-base actor (403 for a department user without one)."""
    try:
        return Actor(user.name, ROLES[user.role], user.department or "")
    except (KeyError, KbError) as exc:
        raise HTTPException(
            403, f"user {user.name!r} cannot use the knowledge base: {exc}"
        ) from None


class KbSlot:
    """Stands for the :class:`KnowledgeBase` until it is loaded: every attribute of an
    unloaded slot raises :class:`KbUnavailable` (the router answers 503)."""

    def __init__(self, kb: KnowledgeBase | None = None) -> None:
        self.kb = kb
        self.error = ""
        self.sweeper: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        kb = self.__dict__.get("kb")
        if kb is None:
            why = self.__dict__.get("error") or "the index is still being built"
            raise KbUnavailable(f"knowledge base not available: {why}")
        return getattr(kb, name)

    async def load(self, config: HotlineConfig) -> None:
        """Open the store, import the sample on first start, build the index (in a thread)."""
        from kb.boot import open_kb

        try:
            self.kb, _ = await asyncio.to_thread(open_kb, config)
        except (KbError, KbUnavailable, OSError) as exc:
            self.error = str(exc)
            log.error("knowledge base unavailable: %s", exc)
        else:
            log.info("knowledge base ready: %d published articles", len(self.kb.searcher))
            self.sweeper = asyncio.create_task(self.expire_every(EXPIRY_SWEEP_S))
            if config.kb.self_service:
                await self._speak(self.kb)

    async def expire_every(self, interval_s: float) -> None:
        """Sweep expired articles now and every ``interval_s`` (a failure is logged and the
        next sweep tries again; it never stops the console)."""
        while True:
            kb = self.__dict__.get("kb")
            if kb is not None:
                try:
                    expired = await asyncio.to_thread(kb.sweep_expired, EXPIRY_ACTOR)
                except (KbError, KbUnavailable, OSError, RuntimeError) as exc:
                    log.warning("knowledge-base expiry sweep failed: %s", exc)
                else:
                    for a in expired:
                        log.info("article %s expired (valid until %s)", a.id, a.valid_until)
            await asyncio.sleep(interval_s)

    @staticmethod
    async def _speak(kb: KnowledgeBase) -> None:
        """Callers' self-service is on: synthesise the spoken answers not made yet (the
        sample's on first start; later only what changed) and keep the synthesiser up, so
        a publish reaches callers in seconds."""
        from kb.service import SynthesisError

        if kb.spoken is None:
            return
        try:
            await asyncio.to_thread(kb.spoken.sync, kb.store.published())
        except (SynthesisError, OSError) as exc:
            log.error("spoken answers not synthesised (callers reach agents): %s", exc)
        else:
            log.info("spoken answers ready in %s", kb.spoken.out_dir)

    def close(self) -> None:
        """Stop the expiry sweep and the synthesiser (if it runs) and close the store."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        kb = self.__dict__.get("kb")
        if kb is not None:
            if kb.spoken is not None:
                kb.spoken.close()
            kb.store.close()

    async def screen(self, transcript: str) -> dict[str, Any] | None:
        """The top articles (and notes) for a draft's transcript, or None (no KB, no text)."""
        kb = self.__dict__.get("kb")
        text = transcript.strip()[:200]
        if kb is None or not text:
            return None
        try:
            res = await asyncio.to_thread(kb.search, text, limit=SCREEN_ARTICLES)
        except (KbError, KbUnavailable, RuntimeError, ValueError) as exc:
            log.warning("screen-pop search failed: %s", exc)
            return None
        return {
            "notes": [_brief(h) for h in res.notes],
            "articles": [_brief(h) for h in res.hits],
        }


def _brief(hit: Any) -> dict[str, Any]:
    a = hit.article
    return {
        "id": a.id,
        "version": a.version,
        "title": a.title,
        "answer": a.answer,
        "spoken": a.spoken,
        "department": a.department,
        "confidence": round(hit.confidence, 3),
    }


def mount(app: FastAPI, slot: KbSlot, threshold: float) -> None:
    """``/api/kb/…``: the knowledge base's router over ``slot``."""
    responses: dict[int | str, dict[str, Any]] = {
        **ERRORS,
        404: {"model": Problem, "description": "no such article"},
        503: {"model": Problem, "description": "the knowledge base is not ready or is down"},
    }
    router = make_router(slot, kb_actor, threshold=threshold)  # type: ignore[arg-type]
    app.include_router(router, prefix="/api/kb", responses=responses)
