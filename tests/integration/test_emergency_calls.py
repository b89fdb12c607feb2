"""Emergencies are never refused (第九条): real sipp callers through the ``rules`` stack reach
110/119/120/122 on the emergency trunk (a sipp UAS) with their own number, by keypad, with
Redis stopped, and with the FastAGI server stopped (the dialplan alone).  (Issue 4.)"""

from __future__ import annotations

import re

import pytest
from rules_helpers import emergency_dial_at, invites_for, place_watching, run_all, user_events

pytestmark = pytest.mark.integration


def menu_keys(h) -> dict[str, str]:
    """Emergency line → its key in the configured emergency menu."""
    menu = h.config.menus["emergency"]
    return {t.value: k for k, t in menu.options.items() if t.kind == "emergency"}


def test_keys_9_then_1_to_4_reach_110_119_120_122_with_the_callers_number(rules) -> None:
    keys = menu_keys(rules)
    assert sorted(keys) == ["110", "119", "120", "122"]
    callers = {line: f"1390000011{i}" for i, line in enumerate(sorted(keys))}
    specs = [
        rules.spec(digits="9" + keys[line], caller=callers[line], key_gap_s=4.0, hold_s=8)
        for line in sorted(keys)
    ]

    calls = run_all(*(place_watching(rules, s) for s in specs))

    trunk = rules.phones.emergency
    for line, call in zip(sorted(keys), calls, strict=True):
        caller = callers[line]
        assert call["sipp"]["ok"], call["sipp"]
        assert call["emergency"] is not None, (line, call["fallback_reasons"])
        assert call["emergency"]["line"] == line
        assert call["emergency"]["dial_status"] == "ANSWER"
        assert call["emergency"]["reason"].startswith("key:")  # the call record says why
        invites = invites_for(trunk, caller)
        assert [i.uri_user for i in invites] == [line]
        assert invites[0].from_user == caller and invites[0].pai_user == caller
        assert not call["fallback"] and call["agent"] is None


def test_redis_stopped_callers_still_reach_119_and_a_seat(rules) -> None:
    log_start = rules.fastagi_log_size()
    rules.stack.stop_redis()
    try:
        emergency, seat = run_all(
            place_watching(
                rules, rules.spec(digits="92", caller="13900000120", key_gap_s=4.0, hold_s=8)
            ),
            place_watching(rules, rules.spec(digits="2", caller="13900000121", hold_s=6)),
        )
    finally:
        rules.stack.start_redis()

    assert emergency["emergency"] is not None and emergency["emergency"]["line"] == "119"
    assert emergency["emergency"]["dial_status"] == "ANSWER"
    invite = invites_for(rules.phones.emergency, "13900000120")
    assert [i.uri_user for i in invite] == ["119"]
    assert seat["seat"] == "gjj" and not seat["fallback"]
    assert seat["agent"] is not None and seat["agent"]["endpoint"] in rules.agents_for("gjj")
    log = rules.fastagi_log_since(log_start)
    for call in (emergency, seat):  # the throttle could not decide: both failed open, logged
        assert re.search(rf"call {call['linkedid']}: caller rules stage=normal .*failed_open=True",
                         log), log  # fmt: skip


def test_fastagi_down_a_caller_waiting_for_a_seat_presses_9_then_2_and_reaches_119(rules) -> None:
    general = rules.config.general_seat.id
    queue = f"seat_{general}"
    members = sorted(f"PJSIP/{a}" for a in rules.agents_for(general))
    rules.stack.stop_fastagi()
    for m in members:  # every general-seat agent busy: the caller waits in the queue
        rules.stack.cli(f"queue pause member {m} queue {queue} reason itest")
    try:
        call = run_all(
            place_watching(
                rules,
                rules.spec("92", "13900000130", key_after_s=4.0, key_gap_s=3.0, hold_s=8),
            )
        )[0]
    finally:
        for m in members:
            rules.stack.cli(f"queue unpause member {m} queue {queue}")
        rules.stack.start_fastagi()

    assert call["fallback"] and call["fallback_reasons"][0].startswith("agi-")
    assert [e["Key"] for e in user_events(call, "HotlineQueueExit")] == ["9"]
    assert call["emergency"] is not None and call["emergency"]["line"] == "119"
    assert call["emergency"]["reason"] == "queue-key:9-2"
    assert call["emergency"]["dial_status"] == "ANSWER"
    invite = invites_for(rules.phones.emergency, "13900000130")
    assert [i.uri_user for i in invite] == ["119"]
    assert invite[0].from_user == "13900000130" and invite[0].pai_user == "13900000130"
    assert call["agent"] is None
    reached = emergency_dial_at(call)
    assert reached is not None
    print(f"FastAGI down: caller's INVITE → 119 dialled after {reached:.1f} s")
