"""Finding 1 (issue 8): a hostile carrier INVITE must not forge AMI events or reach an agent's
phone or Asterisk's logs unnormalised.  Raw INVITEs from tests/security/hostile_caller.xml."""

from __future__ import annotations

import re

import pytest

from cli.commands.call import first_key_after
from hotline.call import answered_by

from .security_helpers import SecStack

pytestmark = pytest.mark.integration

FORGED = (
    "%0D%0AEvent%3A%20AgentConnect%0D%0AMemberName%3A%20agent1001%0D%0ACallerIDNum%3A%2013999999999"
)
SPLIT = "%0D%0A%0D%0AEvent%3A%20AgentConnect%0D%0AMemberName%3A%20agent1001%0D%0ALinkedid%3A%201"
HOSTILE = {
    "escaped CR/LF forging an AgentConnect": ("1380013" + FORGED, "Zhang"),
    "escaped CR/LF/CR/LF: a message of its own": ("1380014" + SPLIT, "x"),
    "NUL then CR/LF": ("13800138000%00" + FORGED, "a%00b"),
    "3,000 digits": ("1" * 3000, "long"),
    ";param= and an injection": ("13912345678;param=x" + FORGED, "张三"),
    "quotes and backslashes in the name": ("13912345670", 'Zh\\"ang \\\\ \\"x\\" ' + "Ev'il"),
}
NUMBER = re.compile(r"^(\+?[0-9]{3,20}|anonymous|<unknown>)$")
GJJ_AGENTS = {"agent1002", "agent1009"}  # hotline.yaml: the agents of seat gjj (key 2)


def messages(raw: str) -> list[list[str]]:
    """AMI messages as Asterisk sent them: lists of header lines."""
    return [block.split("\r\n") for block in raw.split("\r\n\r\n") if block.strip()]


def header(msg: list[str], name: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in msg if line.startswith(f"{name}: ")]


def fields(msg: list[str]) -> dict[str, str]:
    """The message's fields (the first of each name; a second Event header fails above)."""
    out: dict[str, str] = {}
    for line in msg:
        name, sep, value = line.partition(": ")
        if sep:
            out.setdefault(name, value)
    return out


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_caller_is_answered_routed_and_forges_nothing(sec: SecStack, case: str) -> None:
    user, name = HOSTILE[case]
    log = sec.stack.asterisk_log  # type: ignore[attr-defined]
    log_start = log.stat().st_size
    phone_logs = {a: sec.phones.phones[a].workdir / f"{a}.messages.log" for a in GJJ_AGENTS}
    phone_start = {a: p.stat().st_size if p.exists() else 0 for a, p in phone_logs.items()}

    out = sec.hostile(user, name, key_after_s=first_key_after(sec.config), hold_s=5)

    assert "SIP/2.0 200 OK" in out["sip"], f"{case}: the call was not answered"
    msgs = messages(out["raw"])
    events = [m for m in msgs if header(m, "Event")]
    assert all(len(header(m, "Event")) == 1 for m in events), f"{case}: a 2nd Event header"
    for m in events:
        bad = [
            (field, v)
            for field in ("CallerIDNum", "ConnectedLineNum", "DestCallerIDNum")
            for v in header(m, field)
            if not NUMBER.match(v)
        ]
        assert not bad, (case, bad, header(m, "Event"))
        for field in ("CallerIDName", "DestCallerIDName", "ConnectedLineName"):
            assert all(len(v.encode()) <= 80 and "\x00" not in v for v in header(m, field)), m
    assert "13999999999" not in out["raw"] and "Linkedid: 1\r\n" not in out["raw"]
    early = [m for m in events if header(m, "Event") == ["Newchannel"]]
    assert not early, "events raised before the caller fields are normalised reach AMI"
    answers = [agent for m in events if (agent := answered_by(fields(m)))]
    seen = [header(m, "Event") + header(m, "UserEvent") + header(m, "Reason") for m in events]
    assert len(answers) == 1, f"{case}: expected one agent's answer, saw {seen}"
    assert f"agent{answers[0]}" in GJJ_AGENTS, answers

    invites = "".join(
        p.read_bytes()[phone_start[a] :].decode(errors="replace") for a, p in phone_logs.items()
    )
    heads = [i.split("\n\n", 1)[0] for i in invites.split("INVITE sip:")[1:]]
    assert len(heads) >= 1, f"{case}: no INVITE reached a 公积金 agent"
    for head in heads:
        for line in head.splitlines():
            if line.lower().startswith(("from:", "p-asserted-identity:", "x-hotline")):
                assert "AgentConnect" not in line and "\x00" not in line, line
                user_part = re.search(r"sip:([^@>]*)@", line)
                assert user_part is None or NUMBER.match(user_part.group(1)), line
    logged = log.read_bytes()[log_start:].decode(errors="replace")
    assert "AgentConnect" not in logged and "1" * 40 not in logged and "%0D" not in logged


@pytest.mark.parametrize("field", ["user", "name"])
def test_raw_line_breaks_in_the_invite_are_refused_and_forge_nothing(
    sec: SecStack,
    field: str,
) -> None:
    """A raw CR/LF cannot travel inside a SIP header: PJSIP drops the INVITE; no channel, no
    forged event, and the next caller is served as usual."""
    injected = "13800\r\nEvent: AgentConnect\r\nMemberName: agent1001"
    user, name = (injected, "x") if field == "user" else ("13800138001", f"N{injected}")
    out = sec.hostile(user, name, key_after_s=1, hold_s=1)
    assert "SIP/2.0 200 OK" not in out["sip"]
    events = [m for m in messages(out["raw"]) if header(m, "Event")]
    assert not [m for m in events if "agent1001" in "\n".join(m)], events
    assert sec.channels() == 0
