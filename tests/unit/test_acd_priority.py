"""Priority rules and re-entry (issue 9): the rules in the config, the IVR applying them,
a supervisor's boost (policy and Lua engine agree, the router applies it), and the router's
re-entry key (a keyed hash of the caller number, none for withheld numbers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from test_acd_router import CONFIG, Clock, FakeAmi, FakeRedis, PolicyEngine, run, wait_event
from test_ivr_flow import EXAMPLE, TICKET, config_with, place_call

from acd.call_commands import PriorityCommand
from acd.commands import CommandError, Source
from acd.engine import RedisEngine
from acd.policy import Offer, Policy, Refused
from acd.reentry import ReentryKeys
from acd.router import AcdRouter
from acd.settings import AcdSettings, AgentProfile
from hotline import safe_yaml
from hotline.config import Acd, HotlineConfig
from hotline.privacy import CallerKey

GJJ1 = AgentProfile(skills={"gjj": 1})
ELDERLY = {"when": "elderly", "key": "#", "priority": 2}
NEW_FACTS = {"when": "new_facts", "key": "2", "priority": 1}
EXHAUSTED = {"when": "exhausted", "priority": 1}
SECRET = CallerKey(b"k" * 32)


def with_rules(*rules: dict[str, object]) -> HotlineConfig:
    acd = {**safe_yaml.load_file(EXAMPLE)["acd"], "priority_rules": list(rules)}
    return config_with(speech={"mode": "off"}, acd=acd)


@pytest.fixture
def routed() -> tuple[AcdRouter, PolicyEngine, FakeAmi, Clock]:
    """The router over the in-memory policy, a recording AMI, the PII key ``SECRET``."""
    engine = PolicyEngine(CONFIG.acd_settings())
    clock = Clock()
    router = AcdRouter(CONFIG, FakeRedis(engine), engine, clock=clock,  # type: ignore[arg-type]
                       reentry=ReentryKeys(None, SECRET))  # fmt: skip
    router.ami = ami = FakeAmi()  # type: ignore[assignment]
    return router, engine, ami, clock


# ---- the rules in the config ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([EXHAUSTED, EXHAUSTED], "one rule per fact; twice: exhausted"),
        ([{**EXHAUSTED, "key": "5"}], "takes no key"),
        ([{"when": "elderly", "priority": 2}], "needs a key"),
        ([{**ELDERLY, "priority": 0}], "greater than or equal to 1"),
        ([{**ELDERLY, "key": "12"}], "should match pattern"),
        ([{**ELDERLY, "priority": 10}], "elderly above max_priority"),
        ([{"when": "vip", "priority": 3}], "'exhausted', 'elderly' or 'new_facts'"),
        ([{**ELDERLY, "extra": 1}], "Extra inputs are not permitted"),
    ],
)
def test_bad_priority_rules_are_refused_with_the_reason(rules: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Acd(priority_rules=rules)


def test_elderly_key_that_already_leads_somewhere_is_refused_naming_the_key() -> None:
    with pytest.raises(ValidationError, match=r"acd.priority_rules.0.key: key \* already leads"):
        with_rules({**ELDERLY, "key": "*"})  # * is the notices menu
    with pytest.raises(ValidationError, match="key 1 of the progress offer"):
        with_rules({**NEW_FACTS, "key": "1"})


def test_default_rules_keep_the_keypad_failure_priority() -> None:
    assert [r.model_dump() for r in Acd().priority_rules] == [
        {"when": "exhausted", "priority": 1, "key": None}
    ]


# ---- the IVR applies them ---------------------------------------------------------------------
def test_elderly_caller_presses_the_elderly_key_then_2_and_queues_with_its_priority() -> None:
    config = with_rules(ELDERLY, EXHAUSTED)
    call = place_call(config, ["#", "2"])
    assert call.played() == ["greeting", "main-menu", "elderly-ack", "main-menu", "transfer"]
    assert call.route.request.skill == "gjj"
    assert call.route.request.priority == 2
    assert call.route.request.fields["priority_rules"] == "elderly"
    assert call.route.request.fields["ivr_path"] == "main>#>2"


def test_without_the_elderly_rule_the_key_is_invalid_and_gives_no_priority() -> None:
    call = place_call(with_rules(EXHAUSTED), ["#", "2"])
    assert "invalid" in call.played()
    assert call.route.request.priority == 0
    assert "priority_rules" not in call.route.request.fields


def test_caller_with_open_demand_and_new_facts_queues_with_the_new_facts_priority() -> None:
    config = with_rules(NEW_FACTS, ELDERLY)
    call = place_call(config, ["2", "2"], open_tickets=(TICKET,))
    assert call.route.request.priority == 1
    assert call.route.request.fields["priority_rules"] == "new_facts"
    assert call.route.request.fields["ivr_path"] == "progress>2>main>2"
    heard = place_call(config, ["1", "2"], open_tickets=(TICKET,))  # progress, no new facts
    assert heard.route.request.priority == 0


def test_several_rules_matched_give_the_highest_priority() -> None:
    config = with_rules(NEW_FACTS, ELDERLY, EXHAUSTED)
    call = place_call(config, ["2", "#", "2"], open_tickets=(TICKET,))
    assert call.route.request.priority == 2
    assert call.route.request.fields["priority_rules"] == "new_facts,elderly"


def test_caller_who_never_presses_a_key_still_gets_the_exhausted_priority() -> None:
    call = place_call(with_rules(EXHAUSTED, ELDERLY), [])
    assert call.route.request.skill == "zonghe"
    assert call.route.request.priority == 1
    assert call.route.request.fields["priority_rules"] == "exhausted"


def test_pressing_the_elderly_key_forever_still_ends_at_an_agent() -> None:
    call = place_call(with_rules(ELDERLY), ["#"] * 100)
    assert call.route.request.skill == "zonghe"  # MAX_COLLECTS bounds the rounds


# ---- a supervisor's boost: the policy and the Lua engine agree --------------------------------
def boost_scenario(acd: Policy | RedisEngine) -> list[list[Offer]]:
    """One agent busy, three normal calls wait; a supervisor boosts the last; aging later
    lets a long-waiting normal call overtake a boosted one."""
    out: list[list[Offer]] = []
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("busy", "gjj", 0, now=0)
    acd.accept("1002", "busy", now=1)
    for i, t in enumerate((2, 3, 10)):
        out.append(acd.enqueue(f"n{i}", "gjj", 0, now=t))
    acd.reprioritize("n2", 1, now=11, by="sup")
    out.append(acd.hangup("busy", now=12))
    out.append(acd.tick(22))  # wrap-up 10 s: the boosted call first
    acd.accept("1002", "n2", now=23)
    acd.reprioritize("n1", 0, now=24)  # lowering is allowed; aging from the arrival
    acd.enqueue("p", "gjj", 1, now=60)  # 57 s after n0: more than one 20 s boost
    out.append(acd.hangup("n2", now=61))
    out.append(acd.tick(71))
    return out


def test_boosted_call_is_answered_first_and_policy_and_lua_engine_agree(
    engine: RedisEngine,
) -> None:
    settings = AcdSettings(wrapup_s=10, ring_timeout_s=15)
    redis_engine = RedisEngine(engine._r, settings)
    redis_engine.install()
    policy = Policy(settings)
    expected = boost_scenario(policy)
    assert expected[3] == []
    assert expected[4] == [Offer("n2", "1002", 22)]
    assert expected[6] == [Offer("n0", "1002", 71)]  # aging: n0 waited longer than p's boost
    assert boost_scenario(redis_engine) == expected
    logged = [e for e in policy.log if e["ev"] == "priority"]
    assert logged[0] == {"t": 11, "ev": "priority", "call": "n2", "skill": "gjj",
                         "priority": 1, "by": "sup"}  # fmt: skip
    entries = [f for _, f in engine._r.xrange("acd:log") if f[b"ev"] == b"priority"]
    assert [(f[b"call"], f[b"priority"], f[b"by"]) for f in entries] == [
        (b"n2", b"1", b"sup"),
        (b"n1", b"0", b""),
    ]


def test_boosting_a_call_at_its_general_step_moves_it_ahead_for_the_zonghe_agents(
    engine: RedisEngine,
) -> None:
    settings = AcdSettings(wrapup_s=10)
    acds: list[Policy | RedisEngine] = [Policy(settings), RedisEngine(engine._r, settings)]
    offers = []
    for acd in acds:
        if isinstance(acd, RedisEngine):
            acd.install()
        acd.login("1002", GJJ1, now=0, ready=False)  # a specialist: the steps stand
        acd.enqueue("a", "gjj", 0, now=0)
        acd.enqueue("b", "gjj", 0, now=1)
        acd.tick(50)  # both at the general step (45 s)
        acd.reprioritize("b", 1, now=50)
        offers.append(acd.login("1008", AgentProfile(general=True), now=51))
    assert offers[0] == offers[1] == [Offer("b", "1008", 51)]


def test_priority_of_a_call_not_waiting_is_refused_in_both(engine: RedisEngine) -> None:
    settings = AcdSettings()
    for acd in (Policy(settings), RedisEngine(engine._r, settings)):
        acd.login("1002", GJJ1, now=0)
        acd.enqueue("c1", "gjj", 0, now=1)  # offered at once: ringing, not waiting
        for call in ("c1", "unknown"):
            with pytest.raises(Refused, match="is not waiting"):
                acd.reprioritize(call, 3, now=2)
        with pytest.raises(Refused, match="malformed"):
            acd.reprioritize("c1|x", 3, now=2)


def test_priority_is_clamped_to_max_priority(engine: RedisEngine) -> None:
    settings = AcdSettings(max_priority=2)
    e = RedisEngine(engine._r, settings)
    e.install()
    e.enqueue("c1", "gjj", 0, now=100)
    e.reprioritize("c1", 99, now=101)
    assert engine._r.hget("acd:c:c1", "pr") == b"2"
    assert float(engine._r.zscore("acd:q:gjj:0", "c1")) == 100 - 2 * 1.0 * 20


# ---- the command and the router ---------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        {"op": "priority", "call": "c1|x", "priority": "1", "at": "1.0"},
        {"op": "priority", "call": "c1", "priority": "-1", "at": "1.0"},
        {"op": "priority", "call": "c1", "priority": "1e3", "at": "1.0"},
        {"op": "priority", "call": "c1", "priority": "101", "at": "1.0"},
        {"op": "priority", "call": "c1", "priority": "１", "at": "1.0"},  # fullwidth digit
        {"op": "priority", "call": "c1", "priority": "1", "at": "nan"},
        {"op": "priority", "call": "c1", "priority": "1", "at": "1.0", "by": "a\r\nb"},
        {"op": "priority", "call": "c1", "priority": "1", "at": "1.0", "source": "root"},
        {"op": "ready", "call": "c1", "priority": "1", "at": "1.0"},
    ],
)
def test_malformed_priority_commands_are_refused(raw: dict[str, str]) -> None:
    with pytest.raises(CommandError):
        PriorityCommand.parse(raw)


def test_router_reads_the_queue_priority_not_the_channels_dialplan_priority(
    routed: tuple,
) -> None:
    router, engine, ami, _clock = routed
    event = {**wait_event("1700.1"), "Priority": "4", "QueuePriority": "2"}
    run(router.handle(event, ami))
    assert engine._calls["1700.1"].priority == 2
    run(router.handle({**wait_event("1700.2"), "QueuePriority": "2\r\nAction: x"}, ami))
    assert engine._calls["1700.2"].priority == 0


def test_router_applies_a_supervisors_priority_to_the_waiting_call(routed: tuple) -> None:
    router, engine, ami, clock = routed
    run(router.handle(wait_event("1700.1"), ami))
    clock.now += 5
    run(router.handle(wait_event("1700.2"), ami))
    assert engine.position("1700.2") == 2
    cmd = PriorityCommand("1700.2", 2, Source.SUPERVISOR, "sup")
    run(router.apply(cmd.fields()))
    assert engine.position("1700.2") == 1
    assert engine.log[-1]["ev"] == "priority"
    hostile = {**cmd.fields(), "call": "1700.1\r\nAction: Originate"}
    run(router.apply(hostile))  # refused with a log line, nothing changed
    assert engine.position("1700.1") == 2


# ---- re-entry keys ----------------------------------------------------------------------------
def test_reentry_key_is_a_keyed_hash_of_the_normalised_number_and_none_when_withheld() -> None:
    keys = ReentryKeys(None, SECRET)
    one = keys.key_for("13800001111")
    assert one == keys.key_for("+86 138-0000-1111") == keys.key_for("008613800001111")
    assert "13800001111" not in one and len(one) == 24
    assert one != keys.key_for("13800002222")
    assert one != ReentryKeys(None, CallerKey(b"z" * 32)).key_for("13800001111")
    for withheld in ("", None, "anonymous", "Restricted", "12", "1" * 200):
        assert keys.key_for(withheld) == ""


def test_no_pii_key_file_means_no_reentry_keys_not_a_failed_call(tmp_path: Any) -> None:
    bad = tmp_path / "key"
    bad.write_text("not hex")
    assert ReentryKeys(bad).key_for("13800001111") == ""


def test_caller_who_hangs_up_and_calls_again_gets_the_old_place_through_the_router(
    routed: tuple,
) -> None:
    router, engine, ami, clock = routed

    def waits(uid: str, number: str) -> None:
        run(router.handle({**wait_event(uid), "CallerIDNum": number}, ami))
        clock.now += 5

    waits("1700.1", "13800001111")  # A
    run(router.handle({"Event": "Hangup", "Uniqueid": "1700.1"}, ami))
    waits("1700.2", "13800002222")  # B
    waits("1700.3", "+8613800001111")  # A again, within reentry_s
    waits("1700.4", "anonymous")  # withheld: a place of its own
    waits("1700.5", "anonymous")
    assert [engine.position(c) for c in ("1700.3", "1700.2", "1700.4", "1700.5")] == [1, 2, 3, 4]
    stored = {c.reentry_key for c in engine._calls.values()}
    assert "" in stored and not any("1380000" in k for k in stored)


def test_reconciled_waiting_channel_keeps_its_reentry_key(routed: tuple) -> None:
    router, engine, ami, _clock = routed
    ami.channels = [{"Uniqueid": "1700.9", "Channel": "PJSIP/carrier-9",
                     "Context": "hotline-acd-wait"}]  # fmt: skip
    ami.vars[("PJSIP/carrier-9", "CALLERID(num)")] = "13800001111"
    asyncio.run(router.reconcile())
    assert engine._calls["1700.9"].reentry_key == SECRET.hash("13800001111")
