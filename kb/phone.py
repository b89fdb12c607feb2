"""The knowledge base on the phone (第十一条): what the IVR's :class:`ivr.actions.LookUp` gets.

:class:`CallerOffers` turns :meth:`KnowledgeBase.caller_offer` into an
:class:`ivr.actions.Article` of prompt names the AGI side plays (``<prefix>kb-<id>-about``,
``<prefix>kb-<id>``, relative to the hotline's prompt directory).  Nothing to offer, an index
still being built, or any failure: an empty article, and the caller reaches an agent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from hotline.config import HotlineConfig
from ivr.actions import Article
from kb.model import KbError, KbUnavailable
from kb.service import KnowledgeBase, SpokenAnswers

log = logging.getLogger("kb.phone")
PROMPT_DIR = "hotline"
"""The directory of the hotline's prompts inside Asterisk's sounds (``agi_scripts.driver``)."""
MAX_TRANSCRIPT = 200
REFRESH_S = 5.0
LOOKUP_TIMEOUT_S = 1.0
"""A caller never waits longer than this for a search (it takes milliseconds)."""


class CallerOffers:
    """Offers for callers.  Articles published by the console (another process) reach this
    index within :data:`REFRESH_S`: the store's live versions are compared and the changed
    ones re-indexed."""

    def __init__(self, kb: KnowledgeBase, threshold: float, prompt_prefix: str = "") -> None:
        self.kb = kb
        self.threshold = threshold
        self.prefix = prompt_prefix
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._live = {a.id: a.version for a in kb.store.published()}

    def refresh(self) -> None:
        """Re-index what was published or withdrawn since the last look."""
        with self._lock:
            self._checked = time.monotonic()
            live = {a.id: a for a in self.kb.store.published()}
            for aid, article in live.items():
                if self._live.get(aid) != article.version:
                    self.kb.searcher.upsert(article)
            for aid in self._live.keys() - live.keys():
                self.kb.searcher.remove(aid)
            self._live = {aid: a.version for aid, a in live.items()}

    def find(self, transcript: str) -> Article:
        """The article to play for ``transcript`` (synchronous; see :meth:`offer`)."""
        kb = self.kb
        if time.monotonic() - self._checked >= REFRESH_S:
            self.refresh()
        found = kb.caller_offer(transcript[:MAX_TRANSCRIPT], self.threshold)
        if found is None:
            return Article()
        return Article(
            id=found.id,
            version=found.version,
            title=found.title,
            about=self.prefix + SpokenAnswers.about_name(found.id),
            answer=self.prefix + SpokenAnswers.prompt_name(found.id),
        )

    async def offer(self, transcript: str) -> Article:
        """:meth:`find` off the event loop, within :data:`LOOKUP_TIMEOUT_S`; fails open."""
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                return await asyncio.to_thread(self.find, transcript)
        except (TimeoutError, KbError, KbUnavailable, OSError, RuntimeError, ValueError) as exc:
            log.warning("knowledge-base lookup failed (%s): the caller goes to an agent", exc)
            return Article()


def prompt_prefix(spoken_dir: Path) -> str | None:
    """How Asterisk names the spoken answers: ``kb-<instance>/`` when ``spoken_dir`` is (a
    link to) a directory right inside the hotline's prompt directory, else ``None`` (the
    wavs are out of Asterisk's reach: callers are offered nothing)."""
    real = spoken_dir.resolve()
    return f"{real.name}/" if real.parent.name == PROMPT_DIR and real.is_dir() else None


def load_offers(config: HotlineConfig) -> CallerOffers | None:
    """Self-service for ``config`` (seats in ``kb.self_service``): opens the knowledge base
    and builds its index (seconds: call it in a thread).  ``None`` when it is off or the
    spoken answers are out of Asterisk's reach."""
    from kb.boot import open_kb

    k = config.kb
    if not (k.enabled and k.self_service):
        return None
    prefix = prompt_prefix(Path(k.spoken_dir))
    if prefix is None:
        log.error("kb.spoken_dir %s is not inside Asterisk's hotline prompts: "
                  "no self-service", k.spoken_dir)  # fmt: skip
        return None
    kb, threshold = open_kb(config)
    return CallerOffers(kb, threshold, prefix)
