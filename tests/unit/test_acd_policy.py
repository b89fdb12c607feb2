"""Routing policy scenarios: who gets which call, when, in which order (pure, no Redis)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from acd.policy import AgentState, Offer, Policy, Reason, Refused
from acd.settings import AcdSettings, AgentProfile

GJJ1 = AgentProfile(skills={"gjj": 1})
GJJ2 = AgentProfile(skills={"gjj": 2})
RENSHE1 = AgentProfile(skills={"renshe": 1})
ZONGHE = AgentProfile(general=True)


def make_policy(**overrides: object) -> Policy:
    return Policy(AcdSettings(**{"wrapup_s": 10, "ring_timeout_s": 15, **overrides}))


def test_gongjijin_call_goes_to_idle_gongjijin_agent_not_a_longer_idle_general_agent() -> None:
    acd = make_policy()
    acd.login("1008", ZONGHE, now=0)
    acd.login("1002", GJJ1, now=50)
    assert acd.enqueue("call-1", "gjj", 0, now=100) == [Offer("call-1", "1002", 100)]


def test_no_gongjijin_agent_free_general_agent_takes_call_after_45_s() -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=1)
    acd.accept("1002", "call-1", now=2)
    acd.login("1008", ZONGHE, now=2)
    assert acd.enqueue("call-2", "gjj", 0, now=10) == []
    assert acd.tick(54.9) == []
    assert acd.next_due() == 55
    assert acd.tick(55) == [Offer("call-2", "1008", 55)]


def test_level_2_specialist_takes_call_after_20_s_before_general() -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=0)
    acd.accept("1002", "call-1", now=0)
    acd.login("1009", ZONGHE, now=0)
    acd.login("1012", GJJ2, now=0)
    assert acd.enqueue("call-2", "gjj", 0, now=5) == []
    assert acd.tick(24) == []
    assert acd.tick(25) == [Offer("call-2", "1012", 25)]


def test_no_specialist_logged_in_general_agent_answers_at_once() -> None:
    acd = make_policy()
    acd.login("1008", ZONGHE, now=0)
    assert acd.enqueue("call-1", "jiaotong", 0, now=3) == [Offer("call-1", "1008", 3)]


def test_longest_idle_agent_at_the_best_level_is_chosen() -> None:
    acd = make_policy()
    acd.login("2001", GJJ2, now=0)  # idle longest, but level 2
    acd.login("1001", GJJ1, now=5)
    acd.login("1002", GJJ1, now=7)
    assert acd.enqueue("call-1", "gjj", 0, now=10) == [Offer("call-1", "1001", 10)]
    assert acd.enqueue("call-2", "gjj", 0, now=11) == [Offer("call-2", "1002", 11)]
    acd.accept("1001", "call-1", now=12)
    acd.accept("1002", "call-2", now=12)
    assert acd.enqueue("call-3", "gjj", 0, now=12) == []  # level 2 only after 20 s
    assert acd.tick(32) == [Offer("call-3", "2001", 32)]


def test_unknown_skill_goes_to_the_general_seat() -> None:
    acd = make_policy()
    acd.login("1008", ZONGHE, now=0)
    assert acd.enqueue("call-1", "no-such-skill", 0, now=1) == [Offer("call-1", "1008", 1)]


def test_priority_call_answered_before_earlier_normal_calls() -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("busy", "gjj", 0, now=0)
    acd.accept("1002", "busy", now=0)
    acd.enqueue("normal-1", "gjj", 0, now=1)
    acd.enqueue("normal-2", "gjj", 0, now=2)
    acd.enqueue("elderly", "gjj", 1, now=5)
    acd.hangup("busy", now=8)
    assert acd.tick(18) == [Offer("elderly", "1002", 18)]


def test_aging_a_normal_call_waiting_long_enough_overtakes_a_priority_call() -> None:
    acd = make_policy(priority_boost=1.0)  # one priority step = one 20 s target of waiting
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("busy", "gjj", 0, now=0)
    acd.accept("1002", "busy", now=0)
    acd.enqueue("normal", "gjj", 0, now=1)
    acd.enqueue("priority", "gjj", 1, now=25)  # 24 s later: more than the 20 s boost
    acd.hangup("busy", now=30)
    assert acd.tick(40) == [Offer("normal", "1002", 40)]


def test_freed_agent_takes_the_call_most_late_against_its_skills_target() -> None:
    skills = AcdSettings().skills
    slow = skills["renshe"].model_copy(update={"service_level_s": 60.0})
    acd = make_policy(skills={**skills, "renshe": slow})
    both = AgentProfile(skills={"gjj": 1, "renshe": 1})
    acd.login("1001", both, now=0)
    acd.enqueue("busy", "gjj", 0, now=0)
    acd.accept("1001", "busy", now=0)
    acd.enqueue("renshe-call", "renshe", 0, now=1)  # waits 29 s of a 60 s target: 0.48
    acd.enqueue("gjj-call", "gjj", 0, now=20)  # waits 10 s of a 20 s target: 0.5
    acd.hangup("busy", now=20)
    assert acd.wrapup_end("1001", now=30) == [Offer("gjj-call", "1001", 30)]


def test_ring_no_answer_makes_agent_not_ready_and_call_goes_to_next_agent() -> None:
    acd = make_policy()
    acd.login("1001", GJJ1, now=0)
    acd.login("1002", GJJ1, now=1)
    assert acd.enqueue("call-1", "gjj", 0, now=5) == [Offer("call-1", "1001", 5)]
    assert acd.tick(20) == [Offer("call-1", "1002", 20)]  # 15 s ring time-out
    assert acd.agent_state("1001") == (AgentState.NOT_READY, Reason.NO_ANSWER, "")


def test_call_not_answered_goes_back_to_the_head_of_its_queue() -> None:
    acd = make_policy()
    acd.login("1001", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=1)
    acd.enqueue("call-2", "gjj", 0, now=2)
    acd.no_answer("1001", "call-1", now=3)
    assert acd.position("call-1") == 1
    acd.login("1003", GJJ1, now=4)
    assert acd.call_state("call-1") == ("reserved", "1003")


def test_wrap_up_is_respected_before_the_next_offer() -> None:
    acd = make_policy(wrapup_s=30)
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=0)
    acd.accept("1002", "call-1", now=1)
    acd.enqueue("call-2", "gjj", 0, now=50)
    assert acd.hangup("call-1", now=60) == []
    assert acd.agent_state("1002")[0] == AgentState.WRAPUP
    assert acd.tick(89) == []
    assert acd.tick(90) == [Offer("call-2", "1002", 90)]


def test_caller_hanging_up_while_waiting_is_counted_abandoned_with_the_wait() -> None:
    acd = make_policy()
    acd.enqueue("call-1", "gjj", 0, now=10)
    acd.hangup("call-1", now=42)
    assert acd.log[-1] == {"t": 42, "ev": "abandon", "call": "call-1", "skill": "gjj", "wait": 32}
    assert acd.waiting("gjj") == 0


def test_caller_calling_back_within_the_reentry_time_gets_the_old_place() -> None:
    acd = make_policy(reentry_s=120)
    acd.enqueue("a", "gjj", 0, now=0, reentry_key="k1")
    acd.enqueue("b", "gjj", 0, now=5)
    acd.hangup("a", now=10)
    acd.enqueue("a2", "gjj", 0, now=30, reentry_key="k1")
    assert acd.position("a2") == 1
    acd.hangup("a2", now=40)
    acd.enqueue("a3", "gjj", 0, now=200, reentry_key="k1")  # too late
    assert acd.position("a3") == 2


def test_caller_hanging_up_while_ringing_frees_the_agent_for_the_next_call() -> None:
    acd = make_policy()
    acd.login("1001", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=1)
    acd.enqueue("call-2", "gjj", 0, now=2)
    assert acd.hangup("call-1", now=3) == [Offer("call-2", "1001", 3)]


def test_last_specialist_logging_out_sends_waiting_calls_to_general_agents_at_once() -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0, ready=False)
    acd.login("1008", ZONGHE, now=0)
    acd.enqueue("busy", "jiaotong", 0, now=0)  # keeps 1008 busy
    acd.enqueue("call-1", "gjj", 0, now=1)
    acd.hangup("busy", now=2)
    assert acd.tick(12) == []  # wrap-up over, but call-1 waits for the 专席 until 46 s
    assert acd.logout("1002", now=13) == [Offer("call-1", "1008", 13)]


def test_agent_on_break_gets_no_offer_until_ready() -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0)
    acd.not_ready("1002", Reason.BREAK, now=1)
    assert acd.enqueue("call-1", "gjj", 0, now=2) == []
    assert acd.ready("1002", now=3) == [Offer("call-1", "1002", 3)]


@pytest.mark.parametrize(
    "event",
    [
        lambda acd: acd.accept("1002", "nope", 1),
        lambda acd: acd.ready("9999", 1),
        lambda acd: acd.logout("1002", 1),  # on a call
        lambda acd: acd.login("1002", GJJ1, 1),  # twice
        lambda acd: acd.no_answer("1002", "call-1", 1),  # already answered
        lambda acd: acd.login("1003", AgentProfile(skills={"nosuch": 1}), 1),
    ],
)
def test_events_that_do_not_fit_the_state_are_refused_and_change_nothing(event) -> None:
    acd = make_policy()
    acd.login("1002", GJJ1, now=0)
    acd.enqueue("call-1", "gjj", 0, now=0)
    acd.accept("1002", "call-1", now=0)
    before = len(acd.log)
    with pytest.raises(Refused):
        event(acd)
    assert len(acd.log) == before
    assert acd.agent_state("1002")[0] == AgentState.ON_CALL


def test_same_call_enqueued_twice_is_offered_once() -> None:
    acd = make_policy()
    acd.login("1001", GJJ1, now=0)
    acd.login("1002", GJJ1, now=0)
    assert len(acd.enqueue("call-1", "gjj", 0, now=1)) == 1
    assert acd.enqueue("call-1", "gjj", 0, now=1) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"wrapup_s": -1}, "greater than or equal to 0"),
        ({"ring_timeout_s": float("nan")}, "finite number"),
        ({"fallback_skill": "nosuch"}, "not one of the skills"),
        ({"skills": {"gjj": {"steps": [{"level": 1, "after_s": 5}]}}}, "must start at after_s 0"),
        ({"skills": {"gjj": {"steps": [{"level": 0, "after_s": 0}]}}}, "level must be 1..9"),
        (
            {
                "skills": {
                    "gjj": {"steps": [{"level": 1, "after_s": 0}, {"level": 2, "after_s": -3}]}
                }
            },
            "greater than or equal to 0",
        ),
        (
            {
                "skills": {
                    "gjj": {"steps": [{"level": 1, "after_s": 20}, {"level": 2, "after_s": 0}]}
                }
            },
            "must start at after_s 0",
        ),
        (
            {
                "skills": {
                    "gjj": {
                        "steps": [{"level": "general", "after_s": 0}, {"level": 1, "after_s": 9}]
                    }
                }
            },
            "'general' step must be the last",
        ),
        (
            {
                "skills": {
                    "gjj": {"steps": [{"level": 2, "after_s": 0}, {"level": 1, "after_s": 9}]}
                }
            },
            "levels must rise",
        ),
        ({"skills": {"GJJ; DROP": {"steps": [{"level": 1, "after_s": 0}]}}}, "pattern"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_hostile_settings_are_refused_with_a_clear_error(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AcdSettings(**settings)


def test_hostile_agent_profiles_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"levels must be 1\.\.9"):
        AgentProfile(skills={"gjj": 0})
    with pytest.raises(ValidationError, match="at least one skill"):
        AgentProfile()


@pytest.mark.parametrize("bad", ["", "a|b", "x,y", "a:b", "名字", "a" * 65, None, 7])
def test_malformed_call_and_agent_ids_are_refused(bad: object) -> None:
    acd = make_policy()
    with pytest.raises(Refused, match="malformed"):
        acd.enqueue(bad, "gjj", 0, now=0)  # type: ignore[arg-type]
    with pytest.raises(Refused, match="malformed"):
        acd.login(bad, GJJ1, now=0)  # type: ignore[arg-type]
    if bad:  # an empty re-entry key means "none"
        with pytest.raises(Refused, match="malformed"):
            acd.enqueue("1700000000.42", "gjj", 0, now=0, reentry_key=bad)  # type: ignore[arg-type]
    assert acd.log == []
