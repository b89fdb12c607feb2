"""The calls waiting for an agent, as the router's engine holds them (read-only).

For supervisors (``console/acd_calls.py``): per call its id, skill, place, arrival, priority
and whether it is a callback: the engine's own fields of ``P c:<call>`` read by name, never
the re-entry key nor anything else about the caller.  Every waiting call of a skill is in
its tier-0 queue ``P q:<skill>:0`` (the first step starts at 0 s), ranked by virtual arrival,
so a call's place is its rank there (as in :func:`acd.announce.waiting_place`).  Four
pipelined reads, bounded by ``limit`` calls; nothing is scanned and nothing is written, so
the router stays the only writer of queue state.  The reads are not one transaction: a list
read while the router changes a call may pair its new priority with its old place; the next
read is right.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acd.policy import Refused, check_id

log = logging.getLogger("acd.waiting")

FIELDS = ("st", "sk", "pr", "arr", "cb")
"""The fields of ``P c:<call>`` read (and nothing else of it)."""


@dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: str
    skill: str
    place: int
    """1 = next to be served among the skill's waiting calls."""
    arrived: float
    """The arrival the engine ranks from (a re-entered caller's earlier one)."""
    priority: int
    callback: bool
    """Booked a callback: holds its place with no channel (docs/acd.md "Callbacks")."""


@dataclass(frozen=True, slots=True)
class WaitingList:
    calls: list[WaitingCall]
    total: int
    """Calls waiting in the skills read; more than ``len(calls)`` when cut at the limit."""


async def waiting_calls(
    redis: Any, skills: Sequence[str], *, limit: int = 500, prefix: str = "acd:"
) -> WaitingList:
    """The waiting calls of ``skills`` and of any other skill the engine has installed, by
    skill (in that order) then place; at most ``limit``.  ``redis`` is a ``redis.asyncio``
    client; its errors pass through."""
    installed = sorted(_text(k) for k in await redis.hkeys(f"{prefix}skills"))
    order = [s for s in dict.fromkeys([*skills, *installed]) if _is_id(s)]
    async with redis.pipeline(transaction=False) as pipe:
        for skill in order:
            pipe.zcard(f"{prefix}q:{skill}:0")
        sizes = [int(n) for n in await pipe.execute()]
    heads: list[tuple[str, int]] = []  # (skill, how many to read)
    room = limit
    for skill, size in zip(order, sizes, strict=True):
        if size and room > 0:
            heads.append((skill, min(size, room)))
            room -= heads[-1][1]
    async with redis.pipeline(transaction=False) as pipe:
        for skill, n in heads:
            pipe.zrange(f"{prefix}q:{skill}:0", 0, n - 1)
        members = await pipe.execute()
    listed = [
        (skill, rank + 1, _text(m))
        for (skill, _), ids in zip(heads, members, strict=True)
        for rank, m in enumerate(ids)
    ]
    listed = [x for x in listed if _is_id(x[2], "call")]
    async with redis.pipeline(transaction=False) as pipe:
        for _, _, call_id in listed:
            pipe.hmget(f"{prefix}c:{call_id}", *FIELDS)
        found = await pipe.execute()
    calls = []
    for (skill, place, call_id), raw in zip(listed, found, strict=True):
        call = _call(call_id, skill, place, [_text(v) for v in raw])
        if call is not None:
            calls.append(call)
    return WaitingList(calls, sum(sizes))


def _call(call_id: str, skill: str, place: int, raw: list[str]) -> WaitingCall | None:
    """One queued call, or ``None`` when it stopped waiting between the reads (or its hash is
    not the engine's: logged)."""
    st, sk, pr, arr, cb = raw
    if st != "waiting" or sk != skill:
        return None
    try:
        arrived, priority = float(arr), int(pr)
    except ValueError:
        arrived, priority = math.nan, -1
    if not math.isfinite(arrived) or priority < 0:
        log.warning("waiting call %s: unreadable arrival or priority, not listed", call_id)
        return None
    return WaitingCall(call_id, skill, place, arrived, priority, cb == "1")


def _is_id(value: str, kind: str = "skill") -> bool:
    try:
        check_id(kind, value)
    except Refused:
        log.warning("queue holds a malformed %s id %r, not listed", kind, value[:40])
        return False
    return True


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
