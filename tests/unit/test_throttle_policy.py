"""Caller policy at call start: throttle stage and open demands, each failing open."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from callers.policy import CallerPolicy
from callers.throttle import Throttle
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.privacy import CallerKey
from tickets.sqlite import SqliteTicketStore

KEY = CallerKey(b"unit-test-secret-0123456789")
CALLER = "13800001111"


class DownRedis:
    """A Redis client whose every script call is refused."""

    def register_script(self, _: str) -> Any:
        async def run(**_: Any) -> Any:
            raise RedisConnectionError("Connection refused")

        return run

    async def aclose(self) -> None:
        pass


class HangingTickets:
    """A city ticket system that never answers."""

    async def open_demands(self, caller: str) -> list[Any]:
        await asyncio.sleep(30)
        return []

    async def close(self) -> None:
        pass


def down_throttle() -> Throttle:
    return Throttle(ThrottleSettings(), RedisSettings(), KEY, client=DownRedis())  # type: ignore[arg-type]


async def test_redis_down_the_caller_still_hears_the_progress_of_their_demand(
    tmp_path: Path,
) -> None:
    store = SqliteTicketStore(tmp_path / "t.sqlite3", KEY)
    ticket = await store.create(
        {"caller": CALLER, "call_id": "c0", "seat": "gjj", "summary": "公积金提取"}
    )
    policy = CallerPolicy(down_throttle(), store)
    screen = await policy.screen("+86 13800001111", "c1")
    assert (screen.flag, screen.decision.failed_open) == ("normal", True)
    assert [(t["id"], t["status"]) for t in screen.open_tickets] == [(ticket.id, "accepted")]
    assert all("caller" not in t for t in screen.open_tickets)
    await policy.call_ended(CALLER, "c1", -3, had_demand=False)  # no raise
    await policy.close()


async def test_a_silent_ticket_system_costs_the_caller_at_most_the_budget() -> None:
    policy = CallerPolicy(down_throttle(), HangingTickets(), tickets_timeout_s=0.2)  # type: ignore[arg-type]
    start = time.perf_counter()
    screen = await policy.screen(CALLER, "c2")
    assert time.perf_counter() - start < 1.0
    assert screen.open_tickets == ()
    assert screen.flag == "normal"


async def test_without_throttle_or_tickets_every_caller_is_normal() -> None:
    policy = CallerPolicy(None, None)
    screen = await policy.screen(CALLER, "c3")
    assert (screen.flag, screen.open_tickets) == ("normal", ())
    await policy.call_ended(CALLER, "c3", 10, had_demand=True)
    await policy.close()
