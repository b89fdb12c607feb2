"""Out-of-scope notice counts (第九条 2–4) in ``hotline:stats:<yyyymmdd>``: bad keys are
refused clearly and an unreachable Redis never holds the call (fail open)."""

from __future__ import annotations

import socket
import time

from callers.policy import CallerPolicy
from callers.throttle import Throttle
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.privacy import CallerKey


def closed_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_throttle() -> Throttle:
    return Throttle(
        ThrottleSettings(),
        RedisSettings(host="127.0.0.1", port=closed_port(), timeout_ms=50),
        CallerKey(b"k" * 32),
    )


async def test_a_notice_count_with_redis_down_fails_open_quickly() -> None:
    throttle = unreachable_throttle()
    start = time.perf_counter()
    assert await throttle.count_stat("20261122", "out_of_scope:litigation") is False
    assert time.perf_counter() - start < 0.5
    assert throttle.failures == 1
    policy = CallerPolicy(throttle, None)
    await policy.count_notice("privacy")  # no raise
    await policy.close()


async def test_a_bad_statistics_key_is_refused_without_asking_redis() -> None:
    throttle = unreachable_throttle()
    assert await throttle.count_stat("2026-11-22", "out_of_scope:litigation") is False
    assert await throttle.count_stat("20261122", "") is False
    assert throttle.failures == 0
    await throttle.close()
