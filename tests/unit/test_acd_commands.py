"""Agent commands on their way from the console or a phone to the ACD router."""

from __future__ import annotations

import pytest

from acd.commands import STREAM, AgentCommand, CommandError, Op, Source, send
from acd.policy import Reason


def test_an_agent_going_on_break_round_trips_through_the_stream_entry() -> None:
    cmd = AgentCommand(Op.NOT_READY, "1002", Reason.BREAK, Source.PHONE, by="agent1002", at=1e9)
    raw = {k.encode(): v.encode() for k, v in cmd.fields().items()}  # as redis returns it
    assert AgentCommand.parse(raw) == cmd


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"op": "dance", "agent_id": "1002"}, "dance"),
        ({"op": "ready", "agent_id": "10 02; DEL *"}, "malformed agent"),
        ({"op": "not_ready", "agent_id": "1002"}, "needs a reason"),
        ({"op": "not_ready", "agent_id": "1002", "reason": "nap"}, "unknown reason"),
        ({"op": "ready", "agent_id": "1002", "reason": "break"}, "takes no reason"),
        ({"op": "ready", "agent_id": "1002", "by": "x\r\ninjected"}, "malformed 'by'"),
        ({"op": "ready", "agent_id": "1002", "at": -1.0}, "bad time"),
    ],
)
def test_malformed_commands_are_refused_before_anything_is_sent(kwargs, why) -> None:
    with pytest.raises(CommandError, match=why):
        AgentCommand(**kwargs)


def test_a_hostile_stream_entry_is_refused_when_read() -> None:
    with pytest.raises(CommandError):
        AgentCommand.parse({b"op": b"ready", b"agent": b"*", b"at": b"1e9"})
    with pytest.raises(CommandError, match="bad time"):
        AgentCommand.parse({"op": "ready", "agent": "1002", "at": "soon"})


async def test_send_appends_one_bounded_entry() -> None:
    seen = []

    class Redis:
        async def xadd(self, key, fields, maxlen, approximate):  # type: ignore[no-untyped-def]
            seen.append((key, fields, maxlen, approximate))
            return b"1-0"

    entry = await send(Redis(), AgentCommand(Op.READY, "1002", at=1e9))
    assert entry == "1-0"
    assert seen == [(STREAM, AgentCommand(Op.READY, "1002", at=1e9).fields(), 10_000, True)]
