"""Issue 4 in the generated Asterisk config and the AGI handlers that feed the caller rules:
the dialplan-only emergency menu for callers waiting in a queue, the agent's harassment
feature code and caller flag header, the hang-up handler, notices (fakes: a policy)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from acd.interface import RouteDecision
from agi_scripts.handlers import call_end, harassment
from agi_scripts.outcome import count_notice, outcome_of
from agi_scripts.protocol import parse_env
from asterisk_conf.render import queue_emergency, render_text
from callers.call_vars import HARASSMENT_FEATURE_CODE
from hotline.config import load_config
from ivr.actions import EmergencyTransfer, Hangup, Route, RouteRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"


@pytest.fixture(scope="module")
def config():
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def files(config) -> dict[str, str]:
    return render_text(config, "demo")


def context_lines(text: str, name: str) -> list[str]:
    """The ``exten``/``same`` lines of one dialplan context."""
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    assert m, f"no context [{name}]"
    return [ln for ln in m.group(1).splitlines() if ln.startswith(("exten", " same"))]


# ---- the dialplan-only emergency menu ----------------------------------------------------
def test_every_queue_lets_a_waiting_caller_leave_for_the_emergency_menu(config, files) -> None:
    queues = files["queues.conf"]
    n_queues = len(config.seats)
    assert queues.count("context = hotline-queue-exit") == n_queues
    assert queues.count("periodic-announce = hotline/queue-emergency-hint") == n_queues
    assert (Path(__file__).resolve().parents[2] / "sounds/zh/queue-emergency-hint.wav").exists()


def test_key_9_in_a_queue_opens_a_menu_that_dials_each_line_without_agi(config, files) -> None:
    qe = queue_emergency(config)
    assert qe.exit_key == "9" and qe.prompt == "emergency-menu"
    assert dict(qe.keys) == {"1": "110", "2": "119", "3": "120", "4": "122"}
    ext = files["extensions.conf"]
    exit_lines = context_lines(ext, "hotline-queue-exit")
    assert exit_lines[0].startswith("exten => 9,1,UserEvent(HotlineQueueExit")
    menu = "\n".join(context_lines(ext, "hotline-emergency-menu"))
    assert "AGI(" not in menu  # works with the FastAGI server down
    assert "Read(HOTLINE_QUEUE_KEY,hotline/emergency-menu,1,," in menu
    for digit, line in qe.keys:
        assert f'"${{HOTLINE_QUEUE_KEY}}" = "{digit}"]?line-{line},1' in menu
        assert f"Goto(emergency,{line},1)" in menu
        assert f"HOTLINE_EMERGENCY_REASON=queue-key:9-{digit}" in menu
    # no choice: back to a person, never a dead end
    assert "Gosub(hotline-fallback,s,1(queue-emergency-menu-" in menu


def test_a_config_without_an_emergency_menu_still_gets_one(config) -> None:
    data = config.model_dump(mode="python")
    data["menus"]["main"]["options"].pop("9")
    data["menus"].pop("emergency")
    bare = type(config).model_validate(data)
    qe = queue_emergency(bare)
    assert qe.exit_key == "9"
    assert [line for _, line in qe.keys] == sorted(config.emergency.lines)


# ---- agents' channels ------------------------------------------------------------------
def test_agents_get_the_harassment_feature_and_see_the_caller_flag(files) -> None:
    predial = context_lines(files["extensions.conf"], "hotline-agent-predial")
    assert "hotline_harassment" in predial[0] and "hotline_emergency" in predial[0]
    assert any("PJSIP_HEADER(add,X-Hotline-Caller-Flag)" in ln for ln in predial)
    prep = "\n".join(context_lines(files["extensions.conf"], "hotline-queue-prep"))
    assert "__HOTLINE_CALLER_FLAG=" in prep and "__HOTLINE_CALLER_NUM=" in prep
    assert (
        f"hotline_harassment => {HARASSMENT_FEATURE_CODE},self,"
        "Gosub(hotline-agent-harassment,s,1)" in files["features.conf"]
    )
    flag = "\n".join(context_lines(files["extensions.conf"], "hotline-agent-harassment"))
    assert "UserEvent(HotlineHarassment" in flag and "/harassment," in flag


def test_every_carrier_call_pushes_the_call_end_hangup_handler(files) -> None:
    carrier = "\n".join(context_lines(files["extensions.conf"], "hotline-entry"))
    assert carrier.index("hangup_handler_push)=hotline-call-end") < carrier.index("AGI(")
    end = context_lines(files["extensions.conf"], "hotline-call-end")
    assert "/call_end," in end[0] and end[-1].endswith("Return()")


# ---- call-end handler ------------------------------------------------------------------
def test_call_end_arguments_parse_and_a_seat_counts_as_a_demand() -> None:
    served = call_end.parse_call_end(("13800001111", "17000.1", "42", "agent1008", "queue"))
    assert served.seconds == 42 and served.had_demand
    hung_up = call_end.parse_call_end(("13800001111", "17000.2", "7", "", ""))
    assert not hung_up.had_demand
    assert call_end.parse_call_end(("", "1.3", "9", "", "emergency")).had_demand


@pytest.mark.parametrize(
    "args",
    [(), ("138", "", "5", "", ""), ("138", "1.1", "x", "", ""), ("138", "1.1", "-4", "", "")],
)
def test_bad_call_end_arguments_are_refused_clearly(args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="call-end"):
        call_end.parse_call_end(args)


class FakeSession:
    def __init__(self, *args: str, channel: str = "PJSIP/carrier-00000001") -> None:
        lines = [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
        self.env = parse_env("\n".join(["agi_network_script: x", f"agi_channel: {channel}",
                                        *lines]) + "\n\n")  # fmt: skip
        self.call_id = "unknown"


class FakePolicy:
    def __init__(self) -> None:
        self.ended: list[tuple] = []
        self.notices: list[str] = []
        self.throttle = self
        self.flags: list[tuple] = []

    async def call_ended(self, *args: object) -> None:
        self.ended.append(args)

    async def count_notice(self, reason: str) -> None:
        self.notices.append(reason)

    async def flag_harassment(self, caller: str, by: str, note: str, call_id: str) -> int:
        if not caller:
            raise ValueError("not a caller number")
        self.flags.append((caller, by, call_id))
        return len(self.flags)


class FakeApp:
    def __init__(self, policy: object | None) -> None:
        self.policy = policy
        self.throttle = getattr(policy, "throttle", None)


def test_call_end_handler_feeds_the_policy_and_ignores_bad_input() -> None:
    policy = FakePolicy()
    asyncio.run(call_end.handle(FakeSession("13800001111", "9.1", "61", "agent1001", "queue"),
                                FakeApp(policy)))  # fmt: skip
    asyncio.run(call_end.handle(FakeSession("13800001111", "", "61", "", ""), FakeApp(policy)))
    asyncio.run(call_end.handle(FakeSession("13800001111", "9.2", "3", "", ""), FakeApp(None)))
    assert policy.ended == [("13800001111", "9.1", 61.0, True)]


def test_harassment_handler_flags_the_bridged_caller_by_the_agent() -> None:
    policy = FakePolicy()
    session = FakeSession("13800002222", "9.3", "agent1007", channel="PJSIP/agent1007-0000000a")
    asyncio.run(harassment.handle(session, FakeApp(policy)))
    anonymous = FakeSession("", "9.4", "", channel="PJSIP/agent1008-0000000b")
    asyncio.run(harassment.handle(anonymous, FakeApp(policy)))  # refused, logged, no raise
    assert policy.flags == [("13800002222", "agent1007", "9.3")]
    assert harassment.flagged_by("", "PJSIP/agent1008-0000000b") == "agent1008"


# ---- notices ---------------------------------------------------------------------------
def test_the_notice_a_caller_heard_is_read_from_the_terminal_action() -> None:
    def notice_heard(action: Hangup | Route | EmergencyTransfer) -> str:
        decision = RouteDecision(queue="seat_zonghe") if isinstance(action, Route) else None
        return outcome_of(action, decision).notice

    assert notice_heard(Hangup("notice:privacy", notice="privacy")) == "privacy"
    assert notice_heard(Hangup("suspended")) == ""
    req = RouteRequest("c1", "138", "zonghe", 0, {"out_of_scope": "litigation"})
    assert notice_heard(Route(req, notice="litigation")) == "litigation"
    assert notice_heard(Route(RouteRequest("c1", "138", "gjj", 0, {}))) == ""
    assert notice_heard(EmergencyTransfer("119", reason="key:main>9>emergency>2")) == ""


def test_counting_a_notice_never_holds_the_call() -> None:
    class Slow:
        async def count_notice(self, reason: str) -> None:
            await asyncio.sleep(5)

    class Broken:
        async def count_notice(self, reason: str) -> None:
            raise ConnectionError("redis down")

    policy = FakePolicy()
    asyncio.run(count_notice(policy, "litigation", "c1"))
    asyncio.run(count_notice(Slow(), "litigation", "c2"))  # gives up after its budget
    asyncio.run(count_notice(Broken(), "litigation", "c3"))
    asyncio.run(count_notice(None, "litigation", "c4"))
    assert policy.notices == ["litigation"]
