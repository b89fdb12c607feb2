"""Calls through the whole stack: a sipp caller on the carrier trunk, Asterisk, the FastAGI IVR,
app_queue and sipp phones for the agents and the emergency trunk.  (Issue: skeleton.)"""

from __future__ import annotations

import asyncio
import re

import pytest

pytestmark = pytest.mark.integration

ALLOWED_VERBS = ("GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "STREAM FILE",
                 "WAIT FOR DIGIT", "VERBOSE", "ANSWER", "GET DATA")  # fmt: skip


def played(commands: list[str], prompt: str) -> int:
    """How often the IVR asked Asterisk to play ``hotline/<prompt>``."""
    return sum(1 for c in commands if re.match(rf'STREAM FILE "?hotline/{prompt}"? ', c))


def test_caller_presses_2_reaches_a_gongjijin_agent(hotline) -> None:
    call = hotline.place_call(digits="2", caller="13800001002")

    assert call["sipp"]["ok"], call["sipp"]
    assert call["dtmf"] == ["2"]
    assert call["ivr_path"] == "main>2"
    assert call["seat"] == "gjj" and call["queue"] == "seat_gjj"
    assert not call["fallback"]
    agent = call["agent"]
    assert agent is not None, "no agent answered"
    assert agent["endpoint"] in hotline.agents_for("gjj")
    # the answering agent's own phone got the INVITE, with the caller's number
    invites = hotline.phones.phones[agent["endpoint"]].invites()
    assert any(i.from_user == "13800001002" for i in invites), invites
    others = [p for p in hotline.phones if p.role not in hotline.agents_for("gjj")]
    assert not any(i.from_user == "13800001002" for p in others for i in p.invites())
    # operations see the IVR session in the FastAGI server's own metrics (loopback, no caller)
    import urllib.request

    from agi_scripts.metrics import PORT_OFFSET

    url = f"http://127.0.0.1:{hotline.config.agi.port + PORT_OFFSET}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert float(values["hotline_agi_sessions_total"]) >= 1
    assert float(values['hotline_agi_outcomes_total{outcome="completed"}']) >= 1
    assert "13800001002" not in text


def test_silent_caller_hears_the_menu_the_configured_times_then_reaches_the_general_seat(
    hotline,
) -> None:
    menu = hotline.config.menus["main"]
    general = hotline.config.general_seat.id

    call = hotline.place_call(digits="", caller="13800002003", hold_s=100)

    commands = hotline.agi_commands(call["channel"])
    assert played(commands, menu.prompts[-1]) == menu.retries
    assert played(commands, menu.no_input_prompt) == menu.retries
    assert played(commands, menu.invalid_prompt) == 0
    assert call["seat"] == general and not call["fallback"]
    assert call["agent"] is not None and call["agent"]["endpoint"] in hotline.agents_for(general)


def test_invalid_key_plays_invalid_and_the_menu_again_then_2_reaches_gongjijin(hotline) -> None:
    menu = hotline.config.menus["main"]
    assert "#" not in menu.options, "the test needs a key the main menu does not use"

    call = hotline.place_call(digits="#2", caller="13800003004", key_gap_s=5.0)

    commands = hotline.agi_commands(call["channel"])
    assert played(commands, menu.invalid_prompt) == 1
    assert played(commands, menu.prompts[-1]) == 2
    assert call["dtmf"] == ["#", "2"]
    assert call["seat"] == "gjj"
    assert call["agent"] is not None and call["agent"]["endpoint"] in hotline.agents_for("gjj")


def test_caller_hanging_up_mid_menu_ends_the_fastagi_session_cleanly(hotline) -> None:
    log_start = hotline.fastagi_log_size()

    call = hotline.place_call(digits="", caller="13800004005", hold_s=20)  # during the menu

    assert call["sipp"]["ok"] and call["agent"] is None and call["seat"] is None
    assert not call["fallback"]
    log = hotline.fastagi_log_since(log_start)
    assert re.search(rf"call {re.escape(call['linkedid'])} route=ivr outcome=hangup", log), log
    assert not re.search(r"ERROR|CRITICAL|Traceback|exception", log), log
    assert hotline.fastagi_stats()["active"] == 0  # no task left behind


def test_fastagi_down_the_caller_still_reaches_the_general_seat(hotline) -> None:
    general = hotline.config.general_seat.id
    hotline.stack.stop_fastagi()
    try:
        call = hotline.place_call(digits="", caller="13800005006", hold_s=5)
    finally:
        hotline.stack.start_fastagi()

    assert call["fallback"], call
    assert call["seat"] == general and call["queue"] == f"seat_{general}"
    assert call["agent"] is not None and call["agent"]["endpoint"] in hotline.agents_for(general)
    assert call["sipp"]["ok"], call["sipp"]
    # and the IVR is back for the next caller
    assert hotline.fastagi_stats()["active"] == 0


def test_hostile_caller_name_routes_normally_and_injects_no_agi_command(hotline) -> None:
    hostile = 'Evil "Caller" \\ \u2028EXEC Dial PJSIP/110@emergency\u0085" ; HANGUP \\n'

    async def both() -> tuple[dict, dict]:
        plain = hotline.spec(digits="2", caller="13800006007", name="Plain Caller")
        evil = hotline.spec(digits="2", caller="13800006008", name=hostile)
        return tuple(await asyncio.gather(hotline.place_async(plain), hotline.place_async(evil)))

    plain, evil = asyncio.run(both())

    assert evil["sipp"]["ok"] and evil["ivr_path"] == "main>2" and evil["seat"] == "gjj"
    assert evil["agent"] is not None and evil["agent"]["endpoint"] in hotline.agents_for("gjj")
    evil_cmds = hotline.agi_commands(evil["channel"])
    plain_cmds = hotline.agi_commands(plain["channel"])
    assert evil_cmds, "no AGI commands recorded"
    for command in evil_cmds:
        assert command.startswith(ALLOWED_VERBS), command
    verbs = [c.split('"')[0] for c in evil_cmds]
    assert verbs == [c.split('"')[0] for c in plain_cmds]  # the same commands as a plain call
    assert not any("EXEC" in v or "HANGUP" in v for v in verbs)


def test_key_9_then_2_reaches_119_with_the_callers_number(hotline) -> None:
    before = len(hotline.phones.emergency.invites())

    call = hotline.place_call(digits="92", caller="13800007009", key_gap_s=4.0, hold_s=4)

    assert call["emergency"] is not None and call["emergency"]["line"] == "119"
    assert call["emergency"]["dial_status"] == "ANSWER"
    invite = hotline.phones.emergency.invites()[before:]
    assert len(invite) == 1
    assert invite[0].uri_user == "119"
    assert "13800007009" in (invite[0].from_user, invite[0].pai_user)
