"""Notices for the IVR: at each call, those in their window whose audio is in Asterisk's
reach, as :class:`ivr.actions.NoticePrompt`.  Any failure (database, timeout) means no
notice: the call goes on (fail open)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

from hotline.config import HotlineConfig
from ivr.actions import NoticePrompt
from kb.phone import prompt_prefix
from notices.store import NoticeStore, NoticeStoreError
from notices.voice import prompt_of

log = logging.getLogger("notices.phone")

READ_TIMEOUT_S = 0.5


class CallerNotices:
    """The notices a call hears (read from the store at every call: no apply, no cache)."""

    def __init__(self, store: NoticeStore, sounds_dir: Path, prefix: str) -> None:
        self.store = store
        self.sounds_dir = Path(sounds_dir)
        self.prefix = prefix

    def current(self, at: datetime) -> tuple[NoticePrompt, ...]:
        out = []
        for n in self.store.active(at):
            name = prompt_of(n)
            if not (self.sounds_dir / f"{name}.wav").is_file():
                log.warning("notice %s is active but its audio is not ready yet", n.id)
                continue
            out.append(NoticePrompt(self.prefix + name, n.seats))
        return tuple(out)

    async def for_call(self, at: datetime) -> tuple[NoticePrompt, ...]:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await asyncio.to_thread(self.current, at)
        except (TimeoutError, NoticeStoreError, OSError, ValueError) as exc:
            log.warning("notices unavailable (%s): the call goes on without them", exc)
            return ()


def load_notices(config: HotlineConfig) -> CallerNotices | None:
    """``None`` when notices are off or their audio is out of Asterisk's reach."""
    n = config.notices
    if not n.enabled:
        return None
    sounds = Path(n.sounds_dir)
    prefix = prompt_prefix(sounds)  # not created here: `hotline up` links it into Asterisk's
    if prefix is None:
        log.warning("notices.sounds_dir %s is not (a link into) Asterisk's hotline prompts "
                    "(made by `hotline up`): callers hear no notice", n.sounds_dir)  # fmt: skip
        return None
    return CallerNotices(NoticeStore(n.path), sounds, prefix)
