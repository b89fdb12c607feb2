"""What a caller waiting for the router is told: their place and the estimated wait.

Read-only: one pipelined read of the engine's keys (layout in ``acd/lua.py``), nothing is
changed, so the router stays the only writer of queue state.  The place is the call's rank
in its skill's tier-0 queue (every waiting call of the skill is in it, see
:meth:`acd.engine.RedisEngine.position`); the wait is :func:`acd.estimate.announced_wait`:
the staffing model ``place × handle ÷ capacity`` (*capacity* the agents logged in at the
skill's tiers, ``P staff``; *handle* the skill's moving average of talk + wrap-up that the
router keeps when calls end, ``P h:<skill>`` field ``*``, else the configured default
``acd.default_handle_s``) blended with ``place ×`` the observed time per place the router
keeps when calls are answered (``P g:<skill>`` field ``gap``) once there is one.  A kept
value that is not a sane number is ignored (fail open: the caller still hears an estimate).

:func:`entry_estimate` is the same reading with a sync client: the router records it when it
queues a call, and the engine compares it with the real wait when the call is answered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from acd.estimate import announced_wait, sane_gap
from acd.policy import Refused, check_id

ALL_AGENTS = "*"
"""The field of ``P h:<skill>`` holding the skill's handle time (agent ids never contain it)."""


@dataclass(frozen=True, slots=True)
class Place:
    skill: str
    position: int
    """1 = next to be served."""
    wait_s: float | None
    """Estimated wait; ``None`` when nobody who serves the skill is logged in."""


def _tier_keys(policy: bytes | str | None) -> list[str]:
    if not policy:
        return []
    return [k for k in dict.fromkeys(_text(policy).split("|")[-1].split(",")) if k]


def handle_time(raw: bytes | str | None, default_s: float) -> float:
    """The kept handle time of a skill; ``default_s`` when there is none or it is not a sane
    number (fail open: the caller still hears an estimate)."""
    try:
        value = float(_text(raw))
    except ValueError:
        return default_s
    return value if math.isfinite(value) and 0 < value < 86_400 else default_s


def observed_gap(raw: bytes | str | None) -> float | None:
    """The kept time per place of a skill; ``None`` when there is none or it is not a sane
    number (the staffing model alone is announced then)."""
    try:
        value = float(_text(raw))
    except ValueError:
        return None
    return value if sane_gap(value) else None


def _place(
    skill: str,
    rank: int,
    staffed: list[Any],
    kept: tuple[bytes | str | None, bytes | str | None],
    default_s: float,
) -> Place:
    capacity = sum(int(_text(n) or 0) for n in staffed)
    handle, gap = handle_time(kept[0], default_s), observed_gap(kept[1])
    return Place(skill, rank + 1, announced_wait(rank + 1, capacity, handle, gap))


async def waiting_place(
    redis: Any, call_id: str, *, prefix: str = "acd:", handle_s: float = 300.0
) -> Place | None:
    """The waiting call's place and estimated wait; ``None`` when the call is not waiting
    (unknown, already offered, gone).  ``redis`` is a ``redis.asyncio`` client; its errors
    pass through (the caller decides what a caller hears then).  ``handle_s``: the default
    handle time."""
    try:
        check_id("call", call_id)
    except Refused:
        return None
    skill = _text(await redis.hget(f"{prefix}c:{call_id}", "sk"))
    if not skill:
        return None
    async with redis.pipeline(transaction=True) as pipe:
        rank, policy, handle, gap = await _ask(pipe, prefix, skill, call_id).execute()
    if rank is None:
        return None
    tier_keys = _tier_keys(policy)
    staffed = await redis.hmget(f"{prefix}staff", *tier_keys) if tier_keys else []
    return _place(skill, rank, staffed, (handle, gap), handle_s)


def entry_estimate(
    redis: Any, call_id: str, *, prefix: str = "acd:", handle_s: float = 300.0
) -> Place | None:
    """:func:`waiting_place` with a sync ``redis.Redis`` client, for the router right after
    it queued ``call_id``."""
    skill = _text(redis.hget(f"{prefix}c:{call_id}", "sk"))
    if not skill:
        return None
    with redis.pipeline(transaction=True) as pipe:
        rank, policy, handle, gap = _ask(pipe, prefix, skill, call_id).execute()
    if rank is None:
        return None
    tier_keys = _tier_keys(policy)
    staffed = redis.hmget(f"{prefix}staff", *tier_keys) if tier_keys else []
    return _place(skill, rank, staffed, (handle, gap), handle_s)


def _ask(pipe: Any, prefix: str, skill: str, call_id: str) -> Any:
    """Queue on ``pipe`` the reads both readings make: the call's rank in the skill's tier-0
    queue, the skill's policy, its kept handle time and its kept time per place."""
    pipe.zrank(f"{prefix}q:{skill}:0", call_id)
    pipe.hget(f"{prefix}skills", skill)
    pipe.hget(f"{prefix}h:{skill}", ALL_AGENTS)
    pipe.hget(f"{prefix}g:{skill}", "gap")
    return pipe


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
