"""``agi://…/agent_codes``: an agent dials a feature code (``agent_codes`` in the config, e.g.
``*22`` 小休) from the phone to change the ACD state.

Run by ``[from-agents]`` on the agent's own (answered) channel.  The agent is the channel's
PJSIP endpoint (``agi_channel`` = ``PJSIP/agent1002-…``, which Asterisk identified by the
phone's address and port), never a caller ID or a digit the phone sends; the code is the
dialled extension.  The command goes to the ACD router (``acd:commands``, source ``phone``)
when it fits the agent's state; the agent hears one short Mandarin prompt either way:
done, not now (e.g. ready while logged out), or the service is down.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from acd.agent_log import NotNow, submit
from acd.commands import AgentCommand, CommandError, Source
from agi_scripts.driver import prompt_path
from agi_scripts.protocol import clean_text
from agi_scripts.session import AgiSession

if TYPE_CHECKING:
    from agi_scripts.server import AgiApp

log = logging.getLogger("agi_scripts.handlers.agent_codes")

ENDPOINT = re.compile(r"PJSIP/(agent[0-9]{3,8})-[0-9a-f]{1,16}")
REDIS_BUDGET_S = 3.0
"""How long the agent waits for the ACD's Redis before hearing that it is down."""
DONE = {
    ("login", None): "agent-code-login",
    ("ready", None): "agent-code-ready",
    ("not_ready", "break"): "agent-code-break",
    ("not_ready", "after_call_work"): "agent-code-after-call-work",
    ("not_ready", "training"): "agent-code-training",
    ("not_ready", "meeting"): "agent-code-meeting",
    ("logout", None): "agent-code-logout",
}
"""The confirmation prompt of each command (``sounds/prompts.tsv``)."""
REFUSED = "agent-code-refused"
DOWN = "agent-code-unavailable"


def calling_agent(app: AgiApp, channel: str) -> str | None:
    """The configured agent whose endpoint placed this call, or None."""
    m = ENDPOINT.fullmatch(clean_text(channel, 128).strip())
    if m is None or app.config is None:
        return None
    return next((a.id for a in app.config.agents if a.endpoint == m.group(1)), None)


async def request(app: AgiApp, agent: str, code: str) -> str:
    """Send the command of ``code`` for ``agent``; the prompt to play."""
    assert app.config is not None
    action = app.config.agent_codes.actions().get(code)
    if action is None:
        log.warning("agent %s dialled %r: not a feature code", agent, code)
        return REFUSED
    if app.acd_redis is None:
        log.warning("agent %s %s: the ACD's Redis is not configured", agent, code)
        return DOWN
    op, reason = action
    try:
        cmd = AgentCommand(op, agent, reason, Source.PHONE, f"agent{agent}")  # type: ignore[arg-type]
        entry, _ = await asyncio.wait_for(submit(app.acd_redis, cmd), REDIS_BUDGET_S)
    except (NotNow, CommandError) as exc:
        log.info("agent %s %s refused: %s", agent, code, exc)
        return REFUSED
    except Exception as exc:  # Redis down or slow: the agent hears so, nothing was sent
        log.warning("agent %s %s: ACD unavailable (%s: %s)", agent, code, type(exc).__name__, exc)
        return DOWN
    log.info("agent %s %s: %s%s sent (%s)", agent, code, op, f" {reason}" if reason else "", entry)
    return DONE[(op, reason)]


async def handle(session: AgiSession, app: AgiApp) -> None:
    channel = session.env.get("agi_channel")
    code = clean_text(session.env.get("agi_extension"), 8).strip()
    agent = calling_agent(app, channel)
    if agent is None:
        log.warning("feature code %r from %r refused: not an agent's phone", code,
                    clean_text(channel, 64))  # fmt: skip
        prompt = REFUSED
    else:
        session.call_id = f"agent{agent}"
        prompt = await request(app, agent, code)
    await session.stream_file(prompt_path(prompt))
