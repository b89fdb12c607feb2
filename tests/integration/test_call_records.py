"""The call record of real calls (issue 7): sipp callers through Asterisk, the FastAGI IVR and
app_queue; the AGI handler, the dialplan's UserEvents and the channel events reach the call
event stream, and the record keeper (``python -m calls``, started by the stack) stores one
complete record per call, read back here by call id (the caller channel's linkedid)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calls.store import SqliteCallStore
from hotline.call import CallRecord
from hotline.privacy import CallerKey

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def record_of(hotline, call: dict, timeout_s: float = 30.0) -> CallRecord:  # type: ignore[no-untyped-def]
    """The stored record of ``call`` once it has ended."""
    linkedid = call["linkedid"]
    assert linkedid, call

    async def read() -> CallRecord | None:
        store = SqliteCallStore(hotline.config.calls.path)
        try:
            return await store.get(linkedid)
        finally:
            await store.close()

    deadline = time.monotonic() + timeout_s
    rec = None
    while time.monotonic() < deadline:
        rec = asyncio.run(read()) if Path(hotline.config.calls.path).exists() else None
        if rec is not None and rec.ended:
            return rec
        time.sleep(0.3)
    raise AssertionError(f"no ended record for {linkedid}: {rec}")


def caller_hash(hotline, number: str) -> str:  # type: ignore[no-untyped-def]
    return CallerKey.from_file(hotline.config.tickets.key_file).hash(number)


def test_a_call_placed_as_soon_as_the_records_process_is_ready_has_its_start_and_caller(
    hotline,
) -> None:
    stack = hotline.stack
    assert stack.timings["records_bridge_ready"] is True  # hotline up waited for the bridge
    stack.stop_records()
    assert stack.start_records()
    assert stack.wait_records_bridge()
    call = hotline.place_call(digits="", caller="13800071010", hold_s=2)  # hangs up in the menu
    rec = record_of(hotline, call)

    assert rec.started_at is not None and rec.started_at <= (rec.ended_at or 0)
    assert rec.caller.masked == "138****1010" and not rec.caller.withheld
    assert rec.caller.hash == caller_hash(hotline, "13800071010")


def test_record_of_a_caller_who_presses_2_and_reaches_a_gongjijin_agent(hotline) -> None:
    call = hotline.place_call(digits="2", caller="13800071002")
    rec = record_of(hotline, call)

    assert call["agent"] is not None
    assert rec.outcome == "agent" and rec.route == "queue"
    assert (rec.seat, rec.queue) == ("gjj", "seat_gjj")
    assert rec.ivr is not None and rec.ivr.ivr_path == "main>2" and rec.ivr.via == "key"
    assert rec.caller.masked == "138****1002" and not rec.caller.withheld
    assert rec.caller.hash == caller_hash(hotline, "13800071002")
    assert rec.caller_flag == "normal"
    assert [f"agent{a['agent']}" for a in rec.agents] == [call["agent"]["endpoint"]]
    assert rec.started_at is not None and rec.ended_at is not None
    assert rec.started_at <= rec.agents[0]["at"] <= rec.ended_at
    assert "13800071002" not in json.dumps(rec.to_json())  # 第二十条: masked and hashed only


def test_record_of_keys_9_then_2_to_119(hotline) -> None:
    call = hotline.place_call(digits="92", caller="13800071003", key_gap_s=4.0, hold_s=4)
    rec = record_of(hotline, call)

    assert call["emergency"] is not None and call["emergency"]["line"] == "119"
    assert rec.outcome == "emergency" and rec.emergency_line == "119"
    assert rec.emergency_reason == "key:main>9>emergency>2"
    assert rec.ivr is not None and rec.ivr.route == "emergency"
    assert rec.ivr.ivr_path == "main>9>emergency>2"


def test_record_of_an_out_of_scope_notice_that_ends_the_call(hotline) -> None:
    notices = hotline.config.menus["notices"]
    key = next(k for k, t in notices.options.items() if t.value == "privacy")

    call = hotline.place_call(digits="*" + key, caller="13800071004", key_gap_s=4.0, hold_s=30)
    rec = record_of(hotline, call)

    assert call["agent"] is None and call["seat"] is None
    assert rec.outcome == "notice" and rec.notice == "privacy" and rec.route == "hangup"
    assert rec.ivr is not None and rec.ivr.ivr_path == f"main>*>notices>{key}"


def test_record_of_a_caller_when_the_fastagi_server_is_down(hotline) -> None:
    general = hotline.config.general_seat.id
    hotline.stack.stop_fastagi()
    try:
        call = hotline.place_call(digits="", caller="13800071005", hold_s=5)
    finally:
        hotline.stack.start_fastagi()
    rec = record_of(hotline, call)

    assert call["fallback"] and call["agent"] is not None
    assert rec.route == "fallback" and rec.ivr is None
    assert rec.fallback_reasons and rec.fallback_reasons[0].startswith("agi-")
    assert rec.seat == general and rec.outcome == "agent"
    assert rec.caller.hash == caller_hash(hotline, "13800071005")


def test_record_of_a_caller_who_hangs_up_in_the_menu(hotline) -> None:
    call = hotline.place_call(digits="", caller="13800071006", hold_s=6)
    rec = record_of(hotline, call)

    assert call["agent"] is None
    assert rec.outcome == "abandoned" and rec.ivr is None and rec.route == ""
    assert rec.caller.masked == "138****1006" and rec.ended_at is not None


def test_record_of_a_suspended_caller(hotline) -> None:
    from callers.throttle import Throttle

    caller = "13800071007"

    async def suspend() -> None:
        # an agent flagged the caller 30 minutes ago (warning), and again now: suspended
        # once the 第二十九条 grace time has passed
        cfg = hotline.config
        key = CallerKey.from_file(cfg.throttle.key_file)
        past = Throttle(cfg.throttle, cfg.redis, key, clock=lambda: time.time() - 1800)
        await past.flag_harassment(caller, "itest", "harassment", "itest-1")
        await past.decide(caller, "itest-1")
        await past.close()
        now = Throttle(cfg.throttle, cfg.redis, key)
        await now.flag_harassment(caller, "itest", "harassment", "itest-2")
        await now.close()

    asyncio.run(suspend())
    try:
        call = hotline.place_call(digits="", caller=caller, hold_s=30)
        rec = record_of(hotline, call)
    finally:
        subprocess.run(
            [sys.executable, "-m", "callers", "--config", str(hotline.config_path), "lift",
             caller, "--by", "itest", "--why", "test"],
            cwd=REPO, capture_output=True, timeout=30,
        )  # fmt: skip

    assert rec.caller_flag == "suspended"
    assert rec.ivr is not None and rec.ivr.route == "hangup"
    assert rec.ivr.hangup_reason == "suspended" and rec.ivr.ivr_path == "suspended"
    assert rec.outcome == "hangup" and rec.agents == []


def test_hotline_calls_list_and_show_print_the_records(hotline) -> None:
    call = hotline.place_call(digits="2", caller="13800071008")
    rec = record_of(hotline, call)

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "calls", *args, "--config", str(hotline.config_path)],  # noqa: E501
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    listed = json.loads(cli("list", "--seat", "gjj", "--since", "10m", "--json"))
    assert rec.call_id in [r["call_id"] for r in listed]
    assert rec.call_id in cli("list", "--since", "10m")
    shown = json.loads(cli("show", rec.call_id, "--json"))
    assert shown["seat"] == "gjj" and shown["outcome"] == "agent"
    assert "138****1008" in cli("show", rec.call_id)
