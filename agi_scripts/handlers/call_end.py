"""``agi://…/call_end``: a carrier call's hang-up handler feeds the throttle (第二十九条).

The dialplan (``hotline-call-end``, pushed as a hang-up handler when the call is answered)
passes everything as arguments, so nothing is asked of the dead channel::

    AGI(agi://…/call_end,<caller>,<call id>,<seconds>,<agent member name>,<route>)

A call *had a demand* when it reached a seat (an agent answered) or an emergency line: until
agents register tickets, "reached a seat" stands for "registered a demand".  Bad arguments
are logged and ignored; the throttle itself fails open (it never raises).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agi_scripts.protocol import clean_text
from agi_scripts.session import AgiSession

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.call_end")
MAX_CALL_S = 86_400


@dataclass(frozen=True, slots=True)
class CallEnd:
    """One ended call as the dialplan reports it."""

    caller: str
    call_id: str
    seconds: float
    agent: str
    route: str

    @property
    def had_demand(self) -> bool:
        """Reached a seat (an agent answered) or an emergency line."""
        return bool(self.agent) or self.route == "emergency"


def parse_call_end(args: tuple[str, ...]) -> CallEnd:
    """The handler's arguments; ``ValueError`` with what is wrong for bad ones."""
    caller, call_id, seconds, agent, route = [*args, "", "", "", "", ""][:5]
    call_id = clean_text(call_id, 64).strip()
    if not call_id:
        raise ValueError("call-end without a call id")
    try:
        secs = float(seconds)
    except ValueError:
        raise ValueError(f"call-end: duration {seconds!r} is not a number") from None
    if not 0 <= secs <= MAX_CALL_S:
        raise ValueError(f"call-end: duration {secs} s out of range")
    return CallEnd(
        caller=clean_text(caller, 32).strip(),
        call_id=call_id,
        seconds=secs,
        agent=clean_text(agent, 64).strip(),
        route=clean_text(route, 16).strip(),
    )


async def handle(session: AgiSession, app: AgiApp) -> None:
    """Record the call's end with the caller policy (if the server runs with caller rules)."""
    try:
        end = parse_call_end(session.env.args)
    except ValueError as exc:
        log.warning("%s; not counted", exc)
        return
    session.call_id = end.call_id
    policy = app.policy
    if policy is None:
        log.info("call %s: ended, no caller rules to feed", end.call_id)
        return
    await policy.call_ended(end.caller, end.call_id, end.seconds, end.had_demand)
    log.info(
        "call %s: ended after %.0f s, demand=%s route=%s",
        end.call_id,
        end.seconds,
        "yes" if end.had_demand else "no",
        end.route or "-",
    )
