"""Per-agent live feeds: the console pushes screen events, each agent's SSE stream reads them."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

QUEUE_MAX = 100
"""Events kept for a slow agent's stream; beyond it the oldest are dropped."""


class FeedHub:
    """Subscribers per agent id; the last ``call`` event per agent is kept while the call is
    up, so a screen that (re)connects mid-call gets it at once."""

    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.current: dict[str, dict[str, Any]] = {}
        self.published = 0

    def subscribe(self, agent_id: str) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._subs[agent_id].add(q)
        if agent_id in self.current:
            q.put_nowait(self.current[agent_id])
        return q

    def unsubscribe(self, agent_id: str, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs[agent_id].discard(q)

    def listeners(self, agent_id: str) -> int:
        return len(self._subs.get(agent_id, ()))

    def publish(self, agent_id: str, event: dict[str, Any]) -> int:
        """Send ``event`` to every stream of ``agent_id``; returns how many got it."""
        kind = event.get("event")
        if kind == "call":
            self.current[agent_id] = event
        elif kind == "draft" and agent_id in self.current:
            self.current[agent_id] = {**self.current[agent_id], "draft": event.get("draft")}
        elif kind == "hangup" and self.current.get(agent_id, {}).get("call_id") == event.get(
            "call_id"
        ):
            self.current.pop(agent_id, None)
        sent = 0
        for q in list(self._subs.get(agent_id, ())):
            if q.full():
                q.get_nowait()
            q.put_nowait(event)
            sent += 1
        self.published += 1
        return sent


def sse(event: dict[str, Any]) -> str:
    """One Server-Sent Events message (``event:`` from the event's kind, JSON ``data:``)."""
    data = json.dumps(event, ensure_ascii=False)
    return f"event: {event.get('event', 'message')}\ndata: {data}\n\n"
