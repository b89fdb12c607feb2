"""Finding 3 (issue 8): the 第二十九条 state survives a Redis restart (AOF, fsync every
second): a suspended caller is still suspended and every audit entry is still there."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from callers.throttle import Throttle
from hotline.privacy import CallerKey

from .security_helpers import SecStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_throttle_redis import SECRET, SETTINGS, Clock, ring

pytestmark = pytest.mark.integration


def test_suspended_caller_and_audit_survive_a_redis_restart(sec: SecStack) -> None:
    caller, clock = sec.number(), Clock()

    def throttle() -> Throttle:
        return Throttle(SETTINGS, sec.config.redis, CallerKey(SECRET), clock=clock)

    async def before() -> tuple[str, list]:
        t = throttle()
        try:
            stages = [d.stage for d in await ring(t, clock, 8, caller)]
            assert stages[-1] == "suspended", stages
            await t.flag_harassment(caller, by="agent1002", note="辱骂坐席", call_id="c-1")
            return (await t.decide(caller, dry=True)).stage, await t.audit(caller)
        finally:
            await t.close()

    async def after() -> tuple[str, list]:
        t = throttle()
        try:
            return (await t.decide(caller, dry=True)).stage, await t.audit(caller)
        finally:
            await t.close()

    stage, audit = asyncio.run(before())
    assert stage == "suspended" and len(audit) >= 3, audit
    stack = sec.stack
    assert stack.stop_redis()  # type: ignore[attr-defined]
    stack.start_redis()  # type: ignore[attr-defined]
    stage_after, audit_after = asyncio.run(after())
    assert stage_after == "suspended"
    assert audit_after == audit
