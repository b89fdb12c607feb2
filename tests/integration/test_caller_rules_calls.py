"""Caller rules in real calls (issue 4): repeat-caller throttling (第二十九条) through its
stages and out again, allow-list and withheld numbers, call ends and agents' harassment flags
feeding the counters, out-of-scope notices counted (第九条 2–4), and the progress of an open
demand spoken to a repeat caller (第十四条).  sipp callers and agents, the ``rules`` stack
(real Asterisk, FastAGI IVR, Redis)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from rules_helpers import (
    ALLOWED,
    HARASS_AGENT,
    caller_flags_seen,
    emergency_dial_at,
    invites_for,
    place_watching,
    played,
    run_all,
    start_key_pressing_agent,
    user_events,
)

from callers.throttle import Throttle
from cli.commands.call import prompt_seconds
from tickets.sqlite import SqliteTicketStore

pytestmark = pytest.mark.integration


def status(h, caller: str):
    """The caller's stage and counters as the supervisor sees them (changes nothing)."""

    async def ask():
        throttle = Throttle.from_config(h.config)
        try:
            return await throttle.decide(caller, dry=True)
        finally:
            await throttle.close()

    return asyncio.run(ask())


def stage_logged(h, log: str, call: dict) -> str:
    m = re.search(rf"call {call['linkedid']}: caller rules stage=(\w+)", log)
    assert m, f"no caller-rules decision logged for {call['linkedid']}"
    return m.group(1)


def test_repeat_caller_is_warned_then_suspended_still_reaches_119_and_gets_through_after(
    rules,
) -> None:
    caller = "13900000201"
    log_start = rules.fastagi_log_size()
    warned_key_after = prompt_seconds("greeting") + prompt_seconds("throttle-warning") + 2.0

    first = run_all(place_watching(rules, rules.spec(caller=caller, hold_s=3)))[0]
    second = run_all(  # warned: greeting + 第二十九条 notice, then 0 reaches the general seat
        place_watching(rules, rules.spec("0", caller, key_after_s=warned_key_after, hold_s=6))
    )[0]
    third = run_all(  # suspended: the notice still offers 9 → emergency lines
        place_watching(rules, rules.spec("92", caller, key_after_s=3.0, key_gap_s=4.0, hold_s=8))
    )[0]
    suspended = status(rules, caller)

    log = rules.fastagi_log_since(log_start)
    assert [stage_logged(rules, log, c) for c in (first, second, third)] == [
        "normal", "warning", "suspended"]  # fmt: skip
    assert played(rules.agi_commands(first["channel"]), "throttle-warning") == 0
    assert played(rules.agi_commands(second["channel"]), "throttle-warning") == 1
    general = rules.config.general_seat.id
    assert second["seat"] == general and second["agent"] is not None
    assert "warning" in caller_flags_seen(rules.workdir / "phones", caller)  # the agent sees it
    third_cmds = rules.agi_commands(third["channel"])
    assert played(third_cmds, "throttle-suspended") == 1 and played(third_cmds, "greeting") == 0
    assert third["emergency"] is not None and third["emergency"]["line"] == "119"
    assert third["emergency"]["dial_status"] == "ANSWER"
    assert [i.uri_user for i in invites_for(rules.phones.emergency, caller)] == ["119"]
    print(f"suspended caller: INVITE → 119 after {emergency_dial_at(third):.1f} s")
    assert suspended.stage == "suspended" and suspended.suspended_until is not None

    time.sleep(max(0.0, suspended.suspended_until - time.time()) + 1.0)
    after = run_all(place_watching(rules, rules.spec("2", caller, hold_s=6)))[0]

    log = rules.fastagi_log_since(log_start)
    assert stage_logged(rules, log, after) == "normal"
    assert played(rules.agi_commands(after["channel"]), "throttle-suspended") == 0
    assert after["seat"] == "gjj" and after["agent"] is not None


def test_allow_listed_and_withheld_callers_are_never_throttled(rules) -> None:
    log_start = rules.fastagi_log_size()

    async def three_calls(caller: str) -> list[dict]:
        return [await place_watching(rules, rules.spec(caller=caller, hold_s=2)) for _ in range(3)]

    async def both() -> tuple[list[dict], list[dict]]:
        return tuple(await asyncio.gather(three_calls(ALLOWED), three_calls("anonymous")))

    allowed, withheld = asyncio.run(both())

    log = rules.fastagi_log_since(log_start)
    for call in (*allowed, *withheld):
        assert call["sipp"]["ok"], call["sipp"]
        assert stage_logged(rules, log, call) == "normal"
        commands = rules.agi_commands(call["channel"])
        assert played(commands, "throttle-warning") == played(commands, "throttle-suspended") == 0
    assert status(rules, ALLOWED).reasons == ("allow-listed",)


def test_call_ends_feed_the_counters_a_seat_counts_as_a_demand(rules) -> None:
    menu_only, to_seat = "13900000301", "13900000302"

    calls = run_all(
        place_watching(rules, rules.spec(caller=menu_only, hold_s=4)),
        place_watching(rules, rules.spec("2", to_seat, hold_s=8)),
    )
    time.sleep(1.0)  # the hang-up handlers' AGI

    assert calls[1]["agent"] is not None and calls[0]["agent"] is None
    hung_up = status(rules, menu_only).counters
    served = status(rules, to_seat).counters
    assert hung_up["calls_hour"] == 1 and hung_up["no_demand_day"] == 1
    assert served["calls_hour"] == 1 and served["no_demand_day"] == 0
    assert served["minutes_day"] * 60 >= calls[1]["duration_s"] - 2  # its seconds were added
    assert 0 < hung_up["minutes_day"] < served["minutes_day"]


def test_agent_flags_the_caller_for_harassment_with_the_feature_code(rules, tmp_path) -> None:
    from callers.call_vars import HARASSMENT_FEATURE_CODE

    caller = "13900000401"
    agent = next(a for a in rules.config.agents if a.id == HARASS_AGENT)
    key = next(k for k, t in rules.config.menus["main"].options.items()
               if t.kind == "seat" and t.value in agent.seats)  # fmt: skip
    proc, _ = start_key_pressing_agent(rules, HARASS_AGENT, HARASSMENT_FEATURE_CODE, tmp_path)
    try:
        call = run_all(place_watching(rules, rules.spec(key, caller, hold_s=8)))[0]
    finally:
        proc.terminate()
        proc.wait(10)

    assert call["agent"] is not None and call["agent"]["endpoint"] == agent.endpoint
    assert [e["Agent"] for e in user_events(call, "HotlineHarassment")] == [agent.endpoint]

    async def audit():
        throttle = Throttle.from_config(rules.config)
        try:
            return await throttle.audit(caller)
        finally:
            await throttle.close()

    records = [r for r in asyncio.run(audit()) if r.event == "harassment"]
    assert [(r.by, r.call_id) for r in records] == [(agent.endpoint, call["linkedid"])]
    assert status(rules, caller).counters["harassment_flags"] == 1


def test_out_of_scope_notice_is_counted_by_reason_then_0_reaches_the_general_seat(rules) -> None:
    notices = rules.config.menus["notices"]
    key = next(k for k, t in notices.options.items() if t.value == "litigation")
    day = datetime.now(ZoneInfo(rules.config.business_hours.timezone)).strftime("%Y%m%d")
    redis = Redis(**rules.config.redis.client_kwargs())
    field = "out_of_scope:litigation"
    before = int(redis.hget(f"hotline:stats:{day}", field) or 0)

    call = run_all(
        place_watching(rules, rules.spec("*" + key + "0", "13900000501", key_gap_s=4.0))
    )[0]

    after = int(redis.hget(f"hotline:stats:{day}", field) or 0)
    redis.close()
    assert played(rules.agi_commands(call["channel"]), "notice-legal") == 1
    assert [e["Reason"] for e in user_events(call, "HotlineNotice")] == ["litigation"]
    assert after == before + 1
    assert call["seat"] == rules.config.general_seat.id and call["agent"] is not None


def test_repeat_caller_with_an_open_demand_hears_its_progress_then_the_menu(rules) -> None:
    caller = "13900000601"

    async def seed():
        store = SqliteTicketStore.from_config(rules.config)
        try:
            draft = {"caller": caller, "call_id": "itest-seed", "seat": "gjj",
                     "summary": "公积金提取进度", "feedback_days": 7}  # fmt: skip
            return await store.create(draft)
        finally:
            await store.close()

    ticket = asyncio.run(seed())
    key_after = prompt_seconds("greeting") + prompt_seconds("progress-intro") + 1.5

    call = run_all(
        place_watching(rules, rules.spec("1", caller, key_after_s=key_after, hold_s=25))
    )[0]

    commands = rules.agi_commands(call["channel"])
    spoken = [m.group(1) for c in commands if (m := re.match(r'STREAM FILE "?hotline/([\w-]+)', c))]
    assert spoken.index("progress-intro") < spoken.index("progress-menu")
    details = spoken[spoken.index("progress-menu") + 1 :]
    assert details[0] == "status-accepted"
    year = [f"digit-{d}" for d in str(ticket.created_at.year)]
    received = details.index("received-on")
    assert details[received + 1 : received + 6] == [*year, "year"]
    due = details.index("feedback-by")
    assert details[due + 1 : due + 5] == [f"digit-{d}" for d in str(ticket.feedback_due.year)]
    assert "main-menu" in details[due:]  # then the menu is offered
