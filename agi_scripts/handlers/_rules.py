"""Caller-rule helpers for the ``ivr`` handler (not a route: the name starts with ``_``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ivr.actions import EmergencyTransfer, Hangup, Route

log = logging.getLogger("agi_scripts.handlers.ivr")
NOTICE_COUNT_BUDGET_S = 0.2


def notice_heard(action: Route | EmergencyTransfer | Hangup) -> str:
    """The out-of-scope notice (第九条 2–4) the caller heard before this terminal action:
    ``Hangup("notice:<reason>")`` or a ``Route`` whose fields carry ``out_of_scope``."""
    if isinstance(action, Hangup) and action.reason.startswith("notice:"):
        return action.reason.removeprefix("notice:")
    if isinstance(action, Route):
        reason = action.request.fields.get("out_of_scope")
        return reason if isinstance(reason, str) else ""
    return ""


async def count_notice(policy: Any, reason: str, call_id: str) -> None:
    """Count the notice with the caller policy, within a short budget; fails open."""
    if policy is None or not hasattr(policy, "count_notice"):
        return
    try:
        async with asyncio.timeout(NOTICE_COUNT_BUDGET_S):
            await policy.count_notice(reason)
    except Exception as exc:
        log.warning("call %s: notice %s not counted (%s)", call_id, reason, exc)
