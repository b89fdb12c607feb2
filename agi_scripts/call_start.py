"""What the IVR knows when a call arrives: the AGI environment, our call id (the channel's
linkedid) and the caller rules' verdict (fail open: ``normal``)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agi_scripts.protocol import AgiEnv, clean_text
from agi_scripts.services import CallerRules
from agi_scripts.session import AgiSession
from hotline import dialplan_vars as V
from hotline.call import caller_number
from ivr.actions import CallInfo

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.ivr")

CALLER_FLAGS = ("normal", "warning", "suspended")
TEST_CLOCK_ENV = "HOTLINE_TEST_CLOCK_FILE"
"""Tests only: a file holding seconds to add to the call clock (seat hours, holidays,
notices), read at every call; unset in production."""
MAX_TEST_OFFSET_S = 20 * 366 * 86400
SCREEN_BUDGET_S = 1.5
"""Longest the caller rules may hold a call before the menu (they fail open after that)."""


def call_clock() -> datetime:
    """Now (UTC), moved by the test clock file when ``HOTLINE_TEST_CLOCK_FILE`` is set."""
    now = datetime.now(UTC)
    path = os.environ.get(TEST_CLOCK_ENV)
    if not path:
        return now
    try:
        with open(path, encoding="ascii") as f:
            offset = float(f.read(32).strip() or 0)
    except (OSError, ValueError, UnicodeDecodeError):
        return now
    if not abs(offset) <= MAX_TEST_OFFSET_S:  # also NaN
        return now
    return now + timedelta(seconds=offset)


def call_info_from_env(
    env: AgiEnv,
    call_id: str | None = None,
    caller_flag: str | None = None,
    now: datetime | None = None,
) -> CallInfo:
    """What the flow knows at the start, from the AGI environment (caller data cleaned);
    ``started_at`` is ``now`` (default: the current UTC time) for business hours."""
    dialed = clean_text(env.get("agi_dnid"), 32).strip()
    if not dialed or dialed == "unknown":
        dialed = clean_text(env.get("agi_extension"), 32).strip()
    flag = caller_flag if caller_flag in CALLER_FLAGS else "normal"
    return CallInfo(
        call_id=clean_text(call_id or env.get("agi_uniqueid") or "unknown", 64),
        caller=caller_number(clean_text(env.get("agi_callerid"), 64)),
        dialed=dialed or "12345",
        caller_flag=flag,
        started_at=now or call_clock(),
    )


async def screen_caller(policy: CallerRules, info: CallInfo, budget_s: float) -> CallInfo:
    """Caller flag and open demands from the caller rules; on any failure or delay the call
    goes on as ``normal`` with no tickets (fail open)."""
    try:
        async with asyncio.timeout(budget_s):
            screen = await policy.screen(info.caller, info.call_id)
    except Exception as exc:
        log.warning("call %s: caller rules unavailable (%s); normal", info.call_id, exc)
        return info
    flag = screen.flag if screen.flag in CALLER_FLAGS else "normal"
    return replace(info, caller_flag=flag, open_tickets=tuple(screen.open_tickets))


async def read_call_info(
    session: AgiSession, app: AgiApp | None = None, budget_s: float = SCREEN_BUDGET_S
) -> CallInfo:
    """CallInfo from the env, ``HOTLINE_CALL_ID`` (else the channel's linkedid) and the caller
    rules (``app.policy``) or, without them, a ``HOTLINE_CALLER_FLAG`` already set."""
    call_id = await session.get_variable(V.CALL_ID)
    derived = not call_id
    if derived:
        call_id = await session.get_variable("CHANNEL(linkedid)")
    flag = await session.get_variable(V.CALLER_FLAG)
    info = call_info_from_env(session.env, call_id or None, flag)
    session.call_id = info.call_id
    if derived:
        await session.set_variable(V.CALL_ID, info.call_id)
    policy = app.policy if app is not None else None
    if policy is not None:
        info = await screen_caller(policy, info, budget_s)
        await session.set_variable(V.CALLER_FLAG, info.caller_flag)
    return info
