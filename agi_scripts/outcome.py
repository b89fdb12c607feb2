"""The end of the IVR: the flow's terminal action plus the ACD's decision become one typed
:class:`hotline.call.IvrOutcome`, which the dialplan receives as channel variables and the
call event stream as an ``ivr`` event."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from acd.interface import RouteDecision, RouteRequest
from acd.queues import queue_name
from hotline.call import IvrOutcome
from ivr.actions import EmergencyTransfer, Hangup, Route

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp
    from agi_scripts.services import CallerRules

log = logging.getLogger("agi_scripts.handlers.ivr")
NOTICE_COUNT_BUDGET_S = 0.2

Terminal = Route | EmergencyTransfer | Hangup


async def decide_route(app: AgiApp, request: RouteRequest) -> RouteDecision:
    """Ask the ACD; if it fails, the general seat's queue (a caller always reaches a person)."""
    general = app.config.general_seat.id if app.config is not None else "zonghe"
    fallback = RouteDecision(queue=queue_name(general), priority=request.priority, seat=general)
    if app.router is None:
        return fallback
    try:
        return await app.router.route(request)
    except Exception:
        log.exception("call %s: ACD router failed; general seat", request.call_id)
        return fallback


def outcome_of(action: Terminal, decision: RouteDecision | None = None) -> IvrOutcome:
    """The typed outcome of a terminal action (a :class:`Route` needs the ACD's decision)."""
    if isinstance(action, Route):
        if decision is None:
            raise ValueError("a Route needs the ACD's decision")
        return IvrOutcome(
            route="queue",
            ivr_path=action.ivr_path,
            seat=decision.seat or action.request.skill,
            queue=decision.queue,
            priority=decision.priority,
            notice=action.notice,
            via=action.via,
        )
    if isinstance(action, EmergencyTransfer):
        return IvrOutcome(
            route="emergency",
            ivr_path=action.ivr_path,
            emergency_line=action.line,
            emergency_reason=action.reason,
        )
    return IvrOutcome(
        route="hangup", ivr_path=action.ivr_path, notice=action.notice, hangup_reason=action.reason
    )


async def count_notice(policy: CallerRules | None, reason: str, call_id: str) -> None:
    """Count the notice with the caller policy, within a short budget; fails open."""
    if policy is None:
        return
    try:
        async with asyncio.timeout(NOTICE_COUNT_BUDGET_S):
            await policy.count_notice(reason)
    except Exception as exc:
        log.warning("call %s: notice %s not counted (%s)", call_id, reason, exc)
