"""``agi://…/harassment``: an agent's feature code flags the bridged caller (第二十九条).

Run on the agent's channel by the ``hotline_harassment`` feature (``hotline-agent-harassment``
in the dialplan)::

    AGI(agi://…/harassment,<caller number>,<call id>,<agent member name>)

The flag goes to the throttle (audited with who and which call).  A withheld caller cannot
be flagged (logged); Redis trouble is logged; the call goes on either way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agi_scripts.protocol import clean_text
from agi_scripts.session import AgiSession

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.harassment")
NOTE = "坐席按键标记骚扰 (feature code)"


def flagged_by(agent: str, channel: str) -> str:
    """Who flagged: the queue member name, else the agent's endpoint from the channel."""
    agent = clean_text(agent, 64).strip()
    if agent:
        return agent
    name = clean_text(channel, 128).strip()
    return name.split("/", 1)[-1].rsplit("-", 1)[0] if name else "agent"


async def handle(session: AgiSession, app: AgiApp) -> None:
    caller, call_id, agent = [*session.env.args, "", "", ""][:3]
    call_id = clean_text(call_id, 64).strip()
    session.call_id = call_id or session.call_id
    by = flagged_by(agent, session.env.get("agi_channel"))
    throttle = app.throttle
    if throttle is None:
        log.warning("call %s: harassment flag by %s not recorded: no caller rules", call_id, by)
        return
    try:
        flags = await throttle.flag_harassment(clean_text(caller, 32), by, NOTE, call_id)
    except ValueError as exc:
        log.warning("call %s: harassment flag by %s refused: %s", call_id, by, exc)
        return
    except Exception as exc:  # Redis down: logged, the call goes on
        log.warning("call %s: harassment flag by %s failed (%s: %s)", call_id, by,
                    type(exc).__name__, exc)  # fmt: skip
        return
    log.info("call %s: caller flagged for harassment by %s (%d in window)", call_id, by, flags)
