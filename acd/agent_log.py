"""Reading agents' ACD state from any process: the engine's agent hash and the change log;
asking for a change.

The Lua engine (``acd/lua.py``) keeps each agent's state in ``acd:a:<agent>`` (``st``, ``rs``,
``call``) and appends every change to the stream :data:`LOG` (fields ``t``, ``ev``, ``agent``,
``call``, ``skill``, ``state``, ``reason``, ``wait`` …).  Nothing here changes agent state:
:func:`submit` only appends a command for the ACD router (``acd/commands.py``) after checking
that it fits the state now.  The console and the phones' feature codes use it; the call
records keep the history (``calls/agent_events.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from acd.commands import AgentCommand, send
from acd.policy import AgentState, Reason, Refused, check_id

log = logging.getLogger("acd.agent_log")

PREFIX = "acd:"
LOG = PREFIX + "log"
SINCE_SCAN = 500
"""Newest log entries searched for the time of an agent's last change; older changes are
looked up in the call records' store (``agent_events``)."""

OPS_FROM: dict[str, frozenset[AgentState]] = {
    "login": frozenset({AgentState.LOGGED_OUT}),
    "ready": frozenset({AgentState.READY, AgentState.NOT_READY, AgentState.WRAPUP}),
    "not_ready": frozenset({AgentState.READY, AgentState.NOT_READY, AgentState.WRAPUP}),
    "logout": frozenset({AgentState.READY, AgentState.NOT_READY, AgentState.WRAPUP}),
}
"""The states each agent command is accepted in (as the engine decides them)."""


@dataclass(frozen=True, slots=True)
class AgentView:
    agent: str
    state: AgentState
    reason: str = ""
    call: str = ""
    since: float | None = None

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = str(self.state)
        out["reason"] = self.reason or None
        out["call"] = self.call or None
        return out


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One checked entry of :data:`LOG`."""

    entry_id: str
    t: float
    ev: str
    agent: str = ""
    call: str = ""
    skill: str = ""
    state: str = ""
    reason: str = ""
    wait: float | None = None


class BadEntry(ValueError):
    """A log entry that is not what the engine writes (refused, never stored)."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_entry(entry_id: Any, raw: dict[Any, Any]) -> LogEntry:
    """A stream entry into a :class:`LogEntry`; :class:`BadEntry` says what is wrong."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    eid = _text(entry_id)
    try:
        ms, seq = eid.split("-")
        if not (ms.isdigit() and seq.isdigit()):
            raise ValueError
    except ValueError:
        raise BadEntry(f"bad entry id {eid[:40]!r}") from None

    def number(name: str, required: bool) -> float | None:
        text = fields.get(name, "")
        if not text and not required:
            return None
        try:
            value = float(text)
        except ValueError:
            raise BadEntry(f"{eid}: bad {name} {text[:20]!r}") from None
        if not math.isfinite(value) or not 0 <= value < 1e11:
            raise BadEntry(f"{eid}: {name} out of range")
        return value

    t = number("t", True)
    ev = fields.get("ev", "")
    if not ev.isidentifier() or len(ev) > 32:
        raise BadEntry(f"{eid}: bad event {ev[:20]!r}")
    try:
        for kind in ("agent", "call", "skill"):
            if fields.get(kind):
                check_id(kind, fields[kind])
    except Refused as exc:
        raise BadEntry(f"{eid}: {exc}") from None
    state, reason = fields.get("state", ""), fields.get("reason", "")
    if state and state not in AgentState.__members__.values():
        raise BadEntry(f"{eid}: unknown state {state[:20]!r}")
    if reason and reason not in Reason.__members__.values():
        raise BadEntry(f"{eid}: unknown reason {reason[:20]!r}")
    if state and not fields.get("agent"):
        raise BadEntry(f"{eid}: a state without an agent")
    return LogEntry(
        eid,
        t or 0.0,
        ev,
        fields.get("agent", ""),
        fields.get("call", ""),
        fields.get("skill", ""),
        state,
        reason,
        number("wait", False),
    )


History = Callable[[str], Awaitable[tuple[float, str, str] | None]]
"""The agent's last kept state change ``(t, state, reason)`` (the call records' store)."""


async def agent_view(
    redis: Any, agent_id: str, prefix: str = PREFIX, history: History | None = None
) -> AgentView:
    """The agent's state now (``logged_out`` for one the engine has never seen) and when it
    began: from the newest log entries, else from ``history`` when it names the same state.
    Raises the client's errors when Redis is down."""
    check_id("agent", agent_id)
    st, reason, call = await redis.hmget(f"{prefix}a:{agent_id}", "st", "rs", "call")
    if st is None:
        return AgentView(agent_id, AgentState.LOGGED_OUT)
    state, why = AgentState(_text(st)), _text(reason)
    since = await _since(redis, prefix + "log", agent_id)
    if since is None and history is not None:
        try:
            kept = await history(agent_id)
        except Exception as exc:  # the state is still worth showing
            log.warning("agent %s: history unavailable: %s", agent_id, exc)
            kept = None
        if kept is not None and kept[1:] == (state, why):
            since = kept[0]
    return AgentView(agent_id, state, why, _text(call), since)


async def _since(redis: Any, stream: str, agent_id: str) -> float | None:
    """The time of the agent's last state change in the newest :data:`SINCE_SCAN` entries."""
    for entry_id, raw in await redis.xrevrange(stream, count=SINCE_SCAN):
        agent = raw.get(b"agent", raw.get("agent"))
        if _text(agent) == agent_id and (b"state" in raw or "state" in raw):
            try:
                return parse_entry(entry_id, raw).t
            except BadEntry:
                return None
    return None


class NotNow(Exception):
    """The command does not fit the agent's state now (nothing was sent)."""

    def __init__(self, view: AgentView, op: str) -> None:
        super().__init__(f"agent {view.agent} is {view.state}: cannot {op} now")
        self.view = view


async def submit(redis: Any, command: AgentCommand) -> tuple[str, AgentView]:
    """Send ``command`` if it fits the agent's state now: the stream entry id and the state it
    was checked against.  :class:`NotNow` when it does not fit; the client's errors when Redis
    is down (nothing sent).  The router checks again when it applies it (a race is refused
    there)."""
    view = await agent_view(redis, command.agent_id)
    if view.state not in OPS_FROM[command.op]:
        raise NotNow(view, str(command.op))
    return await send(redis, command), view


def quick_client(config: Any) -> Any:
    """A ``redis.asyncio`` client on the config's Redis that says "down" within about a
    second (one retry, no back-off) instead of the client's default of several seconds:
    a person is waiting for the answer.  Connects on first use."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kwargs = config.redis.client_kwargs()
    return Redis(
        **kwargs, socket_connect_timeout=1.0, socket_timeout=3.0, retry=Retry(NoBackoff(), 1)
    )
