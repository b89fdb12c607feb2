"""Agent state history for reports: the ACD's change log (``acd:log``) copied into the call
records' store (table ``agent_events``), and the time each agent spent in each state.

:class:`AgentLogKeeper` runs inside ``python -m calls serve``.  It reads the log from the
last entry it kept (the position is stored with the rows, in one transaction), keeps each
entry once (its stream id is the primary key, so a restart or a second keeper changes
nothing), refuses a malformed entry with a log line, and then trims the log up to what it
kept (``XTRIM MINID``), leaving the last :data:`KEEP_S` seconds for live readers (the
console's state feed, the wallboard).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from acd.agent_log import LOG, BadEntry, parse_entry
from calls.store import AgentEventRow, SqliteCallStore

log = logging.getLogger("calls.agent_events")

KEEP_S = 600.0
"""Seconds of log left in Redis after it is kept (for readers that follow it live)."""
RETRY_S = 2.0


class AgentLogKeeper:
    """Copies ``stream`` (``acd:log``) into ``store`` and trims what it kept."""

    def __init__(
        self,
        redis: Any,
        store: SqliteCallStore,
        *,
        stream: str = LOG,
        batch: int = 500,
        block_ms: int = 1000,
        keep_s: float = KEEP_S,
    ) -> None:
        self.redis = redis
        self.store = store
        self.stream = stream
        self.batch = batch
        self.block_ms = block_ms
        """Under the client's socket time-out (redis-py: 5 s)."""
        self.keep_s = keep_s
        self.kept = 0
        self.refused = 0

    async def poll(self, block: bool = True) -> int:
        """Read one batch after the stored position, keep it, trim; how many were read."""
        last = await self.store.stream_position(self.stream)
        reply = await self.redis.xread(
            {self.stream: last}, count=self.batch, block=self.block_ms if block else None
        )
        entries = reply[0][1] if reply else []
        if not entries:
            return 0
        rows: list[AgentEventRow] = []
        for entry_id, raw in entries:
            try:
                e = parse_entry(entry_id, raw)
            except BadEntry as exc:
                self.refused += 1
                log.warning("%s entry refused (not kept): %s", self.stream, exc)
                continue
            ms, seq = (int(x) for x in e.entry_id.split("-"))
            rows.append((e.entry_id, ms, seq, e.t, e.agent, e.ev, e.state, e.reason, e.call,
                         e.skill, e.wait))  # fmt: skip
        last_id = entries[-1][0]
        last_id = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
        self.kept += await self.store.keep_agent_events(self.stream, rows, last_id)
        await self.trim(last_id)
        return len(entries)

    async def trim(self, kept_id: str, now: float | None = None) -> None:
        """Drop the entries before ``kept_id`` that are older than :attr:`keep_s`."""
        now = time.time() if now is None else now
        horizon = int((now - self.keep_s) * 1000)
        ms, seq = (int(x) for x in kept_id.split("-"))
        minid = f"{ms}-{seq}" if ms < horizon else f"{horizon}-0"
        await self.redis.xtrim(self.stream, minid=minid, approximate=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; Redis or store trouble is logged and retried."""
        while not stop.is_set():
            try:
                await self.poll()
            except Exception as exc:
                log.warning("agent events not kept yet (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_S)


@dataclass
class StateDurations:
    """Seconds in each state, and in ``not_ready`` per reason, within a period."""

    states: dict[str, float] = field(default_factory=dict)
    not_ready: dict[str, float] = field(default_factory=dict)


async def agent_state_durations(
    store: SqliteCallStore, agent: str, start: float, end: float, now: float | None = None
) -> StateDurations:
    """How long ``agent`` spent in each state between ``start`` and ``end`` (up to ``now`` for
    a period not over yet).  Time before the agent's first kept change is not counted."""
    end = min(end, time.time() if now is None else now)
    out = StateDurations()
    if end <= start:
        return out
    changes = await store.agent_states(agent, start, end)
    for i, (t, state, reason) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else end
        seconds = max(0.0, until - max(t, start))
        out.states[state] = out.states.get(state, 0.0) + seconds
        if state == "not_ready":
            why = reason or "unknown"
            out.not_ready[why] = out.not_ready.get(why, 0.0) + seconds
    return out
