"""A Redis stand-in for the call event stream's one-off readers (``CallStream.find``):
``XREAD`` over a list of entries, ``EXISTS`` for the speech heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.call import CallEvent, TicketDraft


def draft_event(message: dict[str, Any], at: float) -> CallEvent:
    """The ``draft`` event the speech service writes for one of its messages."""
    parsed = TicketDraft.parse(message)
    assert parsed is not None
    return CallEvent("draft", parsed.call_id, at, "speech", data={"draft": parsed.stored()})


class StreamRedis:
    """Entries already on the stream, plus ``later`` ones that appear after the first read."""

    def __init__(
        self, keys: set[str], now: list[CallEvent], later: list[CallEvent] | None = None
    ) -> None:
        self.keys = keys
        self.entries = [(f"{int(e.at * 1000)}-{i}", e.to_fields()) for i, e in enumerate(now)]
        self.later = list(later or [])

    async def exists(self, key: str) -> int:
        return int(key in self.keys)

    async def xread(self, streams: dict[str, str], count: int = 100, block: Any = None) -> list:
        ((key, last),) = streams.items()
        after = tuple(int(x) for x in last.split("-"))
        new = [(i, f) for i, f in self.entries if tuple(int(x) for x in i.split("-")) > after]
        if not new and self.later:
            await asyncio.sleep(0.05)
            e = self.later.pop(0)
            self.entries.append((f"{int(e.at * 1000)}-{len(self.entries)}", e.to_fields()))
            return []
        if not new and block:
            await asyncio.sleep(block / 1000)
        return [(key, new[:count])] if new else []
