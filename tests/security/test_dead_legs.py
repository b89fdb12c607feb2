"""Finding 2 (issue 8): a caller whose RTP stops without a BYE is hung up within the configured
RTP time-out (``sip.rtp_timeout_s``; ``RTP_TIMEOUT_S`` here) in the IVR, in a queue and talking
to an agent; after an aborted burst of calls the channel count is back to zero.

The callers (testphones caller.xml) send RTP from the answer to their last key, then none:
a caller whose audio stopped without a BYE."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from hotline.call import answered_by
from testphones.sipp import CallerSpec, caller_argv

from .security_helpers import RTP_TIMEOUT_S, SILENT_KEY, SecStack

pytestmark = pytest.mark.integration

HOLD_S = 45.0
"""How long the callers would stay: far longer than the time-out."""
MARGIN_S = 10.0
"""Slack for a loaded machine (Asterisk checks the time-out once a second)."""


def named(call: dict, event: str, user_event: str | None = None) -> list[dict]:
    return [
        e
        for e in call["events"]
        if e.get("Event") == event and (user_event is None or e.get("UserEvent") == user_event)
    ]


def answered(call: dict) -> list[dict]:
    """An agent's answer: app_queue's ``AgentConnect`` or the ACD router's ``DialEnd``."""
    return [e for e in call["events"] if answered_by(e)]


def caller_hangup(call: dict) -> dict:
    ends = [e for e in named(call, "Hangup") if e.get("Channel") == call["channel"]]
    assert ends, f"the caller's channel never hung up: {call['sipp']}"
    return ends[0]


def hung_up_by_the_hotline(call: dict) -> None:
    assert any("hangup by=far_end" in line for line in call["sipp"]["logs"]), call["sipp"]


def test_silent_caller_in_the_ivr_is_hung_up_within_the_timeout(sec: SecStack) -> None:
    call = sec.place(digits="", hold_s=HOLD_S)
    hung_up_by_the_hotline(call)
    start = named(call, "UserEvent", "HotlineCall")[0]["t"]
    assert caller_hangup(call)["t"] - start <= RTP_TIMEOUT_S + MARGIN_S
    assert not named(call, "UserEvent", "HotlineRoute")  # still in the IVR when it was cut
    assert not answered(call)


def test_caller_gone_while_waiting_in_a_queue_is_hung_up(sec: SecStack) -> None:
    call = sec.place(digits=SILENT_KEY, hold_s=HOLD_S)  # that seat's agent has no phone
    hung_up_by_the_hotline(call)
    joined = named(call, "QueueCallerJoin") + named(call, "UserEvent", "AcdWait")
    assert joined, "the caller never reached the queue (app_queue's or the ACD router's)"
    key = [e for e in named(call, "DTMFEnd") if e.get("Channel") == call["channel"]][-1]["t"]
    end = caller_hangup(call)["t"]
    assert joined[0]["t"] < end <= key + RTP_TIMEOUT_S + MARGIN_S
    assert not answered(call)


def test_caller_gone_while_talking_to_an_agent_is_hung_up(sec: SecStack) -> None:
    call = sec.place(digits="2", hold_s=HOLD_S)
    hung_up_by_the_hotline(call)
    connected = answered(call)
    assert connected, "the caller never reached an agent"
    key = [e for e in named(call, "DTMFEnd") if e.get("Channel") == call["channel"]][-1]["t"]
    end = caller_hangup(call)["t"]
    assert connected[0]["t"] < end <= key + RTP_TIMEOUT_S + MARGIN_S


def test_channels_of_an_aborted_burst_are_gone_within_the_timeout(sec: SecStack) -> None:
    """Up to 40 callers (5 a second, withheld numbers: no throttle) that would hold 45 s;
    sipp is killed (no BYE) once 10 of them are up."""
    assert sec.channels() == 0
    spec = CallerSpec.into(
        sec.config, caller="anonymous", hold_s=HOLD_S, calls=40, rate=5, trace_errors=False
    )
    work = sec.tmp / "calls" / "burst"
    argv = caller_argv(spec, work, 120)
    with open(work / "sipp.out", "wb") as out:
        proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, up = time.monotonic() + 30, 0
        while up < 10 and time.monotonic() < deadline:  # sipp's pace depends on the machine
            time.sleep(0.5)
            up = sec.channels()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert up >= 10, f"only {up} calls came up"
    killed = time.monotonic()
    while sec.channels() and time.monotonic() - killed < RTP_TIMEOUT_S + 3 * MARGIN_S:
        time.sleep(0.5)
    left = sec.channels()
    assert left == 0, f"{left} channels still up {time.monotonic() - killed:.0f} s after the abort"
