"""What a caller waiting for the router is told: their place and the estimated wait.

Read-only: one pipelined read of the engine's keys (layout in ``acd/lua.py``), nothing is
changed, so the router stays the only writer of queue state.  The place is the call's rank
in its skill's tier-0 queue (every waiting call of the skill is in it, see
:meth:`acd.engine.RedisEngine.position`); the wait is :class:`acd.estimate.WaitEstimator`'s
staffing model, ``place × handle ÷ capacity``, with *capacity* the agents logged in at the
skill's tiers (``P staff``) and the default handle time until handle times are kept in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acd.estimate import WaitEstimator
from acd.policy import Refused, check_id


@dataclass(frozen=True, slots=True)
class Place:
    skill: str
    position: int
    """1 = next to be served."""
    wait_s: float | None
    """Estimated wait; ``None`` when nobody who serves the skill is logged in."""


async def waiting_place(
    redis: Any, call_id: str, *, prefix: str = "acd:", handle_s: float = 300.0
) -> Place | None:
    """The waiting call's place and estimated wait; ``None`` when the call is not waiting
    (unknown, already offered, gone).  ``redis`` is a ``redis.asyncio`` client; its errors
    pass through (the caller decides what a caller hears then)."""
    try:
        check_id("call", call_id)
    except Refused:
        return None
    skill = _text(await redis.hget(f"{prefix}c:{call_id}", "sk"))
    if not skill:
        return None
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrank(f"{prefix}q:{skill}:0", call_id)
        pipe.hget(f"{prefix}skills", skill)
        rank, policy = await pipe.execute()
    if rank is None:
        return None
    tier_keys = list(dict.fromkeys(_text(policy).split("|")[-1].split(","))) if policy else []
    tier_keys = [k for k in tier_keys if k]
    staffed = await redis.hmget(f"{prefix}staff", *tier_keys) if tier_keys else []
    capacity = sum(int(_text(n) or 0) for n in staffed)
    wait = None
    if capacity > 0:
        wait = WaitEstimator(handle_s).staffing_estimate(skill, rank + 1, capacity)
    return Place(skill, rank + 1, wait)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
