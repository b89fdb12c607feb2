"""Caller policy at the start and end of a call: one place the AGI side asks.

At the start (:meth:`CallerPolicy.screen`): the throttle stage (第二十九条) and the caller's
open demands (第十四条), fetched concurrently within a budget; both fail open (``normal``,
no tickets).  The result fills ``ivr.actions.CallInfo.caller_flag`` / ``open_tickets`` and the
``HOTLINE_CALLER_FLAG`` channel variable the agent screen shows.

At the end (:meth:`CallerPolicy.call_ended`): the call's duration and whether an agent
registered a demand feed the throttle's counters.

Emergency lines are outside this policy: a suspended caller is still offered 110/119/120/122
by the IVR, and nothing here can refuse an emergency transfer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from callers.throttle import Decision, Throttle
from hotline.config import HotlineConfig
from tickets import TicketStore, open_demands_safely, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallScreen:
    """What the caller rules say about a call as it starts."""

    decision: Decision
    open_tickets: tuple[dict[str, str], ...] = ()
    """Newest first, as ``Ticket.to_json()`` without the caller number (what the IVR's
    progress prompts read: ``status``, ``created_at``, ``feedback_due`` …)."""

    @property
    def flag(self) -> str:
        return self.decision.flag


class CallerPolicy:
    """Throttle + ticket look-up for the call path; either may be ``None`` (not configured)."""

    def __init__(
        self,
        throttle: Throttle | None,
        tickets: TicketStore | None,
        *,
        tickets_timeout_s: float = 0.5,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.throttle = throttle
        self.tickets = tickets
        self._tickets_timeout = tickets_timeout_s
        self._zone = ZoneInfo(timezone)

    @classmethod
    def from_config(cls, config: HotlineConfig) -> CallerPolicy:
        """Throttle on ``config.redis``, tickets from ``config.tickets``."""
        return cls(
            Throttle.from_config(config),
            open_store(config),
            tickets_timeout_s=min(config.tickets.timeout_ms / 1000, 1.0),
            timezone=config.business_hours.timezone,
        )

    async def screen(self, caller: str, call_id: str) -> CallScreen:
        """Decide the stage, count the call, and fetch open demands; never raises."""
        started = time.perf_counter()
        decision, tickets = await asyncio.gather(
            self._decide_and_count(caller, call_id), self._open_tickets(caller)
        )
        log.info(
            "call %s: caller rules stage=%s reasons=%s failed_open=%s tickets=%d ms=%.1f",
            call_id,
            decision.stage,
            ",".join(decision.reasons) or "-",
            decision.failed_open,
            len(tickets),
            (time.perf_counter() - started) * 1000,
        )
        return CallScreen(decision, tickets)

    async def _decide_and_count(self, caller: str, call_id: str) -> Decision:
        if self.throttle is None:
            return Decision("normal", ("no throttle",))
        try:
            decision = await self.throttle.decide(caller, call_id)
            if decision.stage != "suspended" and not decision.failed_open:
                await self.throttle.record_call_start(caller, call_id)
            return decision
        except Exception as exc:  # fail open: the caller goes on
            log.warning("caller policy: throttle failed (%s: %s)", type(exc).__name__, exc)
            return Decision("normal", ("throttle error",), failed_open=True)

    async def _open_tickets(self, caller: str) -> tuple[dict[str, str], ...]:
        if self.tickets is None:
            return ()
        found = await open_demands_safely(self.tickets, caller, self._tickets_timeout)
        return tuple({k: v for k, v in t.to_json().items() if k != "caller"} for t in found)

    async def call_ended(self, caller: str, call_id: str, seconds: float, had_demand: bool) -> None:
        """Feed the call's duration and outcome to the throttle; never raises."""
        if self.throttle is None:
            return
        try:
            await self.throttle.record_call_end(caller, call_id, max(0.0, seconds), had_demand)
        except Exception as exc:
            log.warning("caller policy: record_call_end failed (%s: %s)", type(exc).__name__, exc)

    async def count_notice(self, reason: str) -> None:
        """Count an out-of-scope notice (第九条 2–4) in today's statistics, field
        ``out_of_scope:<reason>`` (local date of the hotline); never raises."""
        if self.throttle is None:
            return
        day = datetime.now(self._zone).strftime("%Y%m%d")
        try:
            await self.throttle.count_stat(day, f"out_of_scope:{reason}")
        except Exception as exc:
            log.warning("caller policy: notice count failed (%s: %s)", type(exc).__name__, exc)

    async def close(self) -> None:
        if self.throttle is not None:
            await self.throttle.close()
        if self.tickets is not None:
            await self.tickets.close()
