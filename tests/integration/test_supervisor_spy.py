"""A supervisor listens to, whispers to and barges into an agent's live call (issue 10), on
the real stack (slot ``supervisor``): Asterisk, FastAGI, Redis, the console, sipp phones.

Every phone's SIP is sipp; every phone's media is a Python RTP phone
(:class:`testphones.rtp.RtpPhone`) sending its own tone — caller 600 Hz, agent 1100 Hz,
supervisor 1700 Hz — and keeping what it receives.  "X hears Y" is measured as the share of
the audio X received, in a window after the mode took effect, that lies at Y's tone.

The caller presses 2 (公积金) in the keypad IVR with RFC 4733 events from its own RTP stream
and reaches the only agent of that seat; a supervisor then drives the console API.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from instances import stack_instance

from hotline import safe_yaml
from hotline.ami import AmiClient
from hotline.config import HotlineConfig, load_config
from testphones.rtp import RtpPhone
from testphones.sipp import (
    CARRIER_IP,
    CallerSpec,
    PhoneSet,
    caller_argv,
    media_at,
    offset_config,
    start_phone,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTANCE, OFFSET = stack_instance("supervisor")
PASSWORD = "itest-spy-password"
AGENT = "1002"
SUPERVISOR = "9001"
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 600.0, 1100.0, 1700.0
TONES = [CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ]
HEARS = 0.05
"""A tone holding at least this share of the received audio is heard (measured: 0.2–0.6)."""
SILENT = 0.01
"""…and at most this share is not (measured: below 0.001)."""
EFFECT = {
    "listen": ("supervisor", AGENT_HZ),
    "whisper": ("agent", SUPERVISOR_HZ),
    "barge": ("caller", SUPERVISOR_HZ),
}
"""Where each mode's change shows first (timed from the request: ``onset``)."""
SETTLE_S, WINDOW_S = 0.7, 2.5
"""After a mode change: time for it to take effect, then the measuring window."""


@dataclass
class SpyStack:
    config: HotlineConfig
    console: str
    phones: PhoneSet
    agent: RtpPhone
    supervisor: RtpPhone
    workdir: Path


@pytest.fixture(scope="module")
def spy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpyStack]:
    from conftest import _why_not_runnable

    from access import AccessStore
    from runtime.procs import StackError
    from runtime.stack import Stack

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("hotline-spy")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    data["agents"] = [a for a in data["agents"] if a["id"] == AGENT]  # 公积金's only agent
    data.setdefault("speech", {})["mode"] = "off"
    data.setdefault("kb", {})["enabled"] = False
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    users = AccessStore.from_config(config)  # what `hotline users add` does
    users.add_user("sup1", PASSWORD, "supervisor")
    users.add_user(f"agent{AGENT}", PASSWORD, "agent", AGENT)
    users.add_user("admin1", PASSWORD, "admin")
    users.close()

    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones = PhoneSet()
    media: list[RtpPhone] = []
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the supervisor stack did not come up: {exc}", pytrace=False)
        agent = config.agents[0]
        sup = config.supervisors[0]
        agent_rtp = RtpPhone(agent.host, AGENT_HZ).start()
        sup_rtp = RtpPhone(sup.host, SUPERVISOR_HZ).start()
        media += [agent_rtp, sup_rtp]
        for role, host, port, rtp in [(agent.endpoint, agent.host, agent.port, agent_rtp),
                                      (sup.endpoint, sup.host, sup.port, sup_rtp)]:  # fmt: skip
            phones.phones[role] = start_phone(role, host, port, tmp / "phones",
                                              rtp_port=rtp.port)  # fmt: skip
        console = f"http://{config.console.host}:{config.console_port}"
        yield SpyStack(config, console, phones, agent_rtp, sup_rtp, tmp)
    finally:
        for rtp in media:
            rtp.stop()
        phones.stop()
        stack.down()


def login(client: httpx.Client, name: str) -> dict[str, str]:
    r = client.post("/api/login", json={"name": name, "password": PASSWORD, "bearer": True})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def place_caller(s: SpyStack, caller: RtpPhone, hold_s: float) -> asyncio.subprocess.Process:
    """A sipp caller whose SDP names ``caller``'s port; it hangs up after ``hold_s``."""
    work = s.workdir / "caller"
    spec = CallerSpec.into(s.config, caller="13900007701", hold_s=hold_s)
    argv = caller_argv(spec, work, timeout_s=hold_s + 60)
    at = argv.index("-sf") + 1
    argv[at] = str(media_at(Path(argv[at]), work))
    argv += ["-set", "rtp_port", str(caller.port)]
    out = open(work / "sipp.out", "wb")  # noqa: SIM115 - closed with the process
    try:
        return await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out, cwd=work)
    finally:
        out.close()


def window(since: float) -> tuple[float, float]:
    start = since + SETTLE_S
    return start, start + WINDOW_S


async def heard(since: float, phones: dict[str, RtpPhone]) -> dict[str, dict[float, float]]:
    """Each phone's tone levels in the window after a mode change at ``since``."""
    start, end = window(since)
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    return {name: p.tone_levels(TONES, start, end) for name, p in phones.items()}


async def hang_up_call(config: HotlineConfig, linkedid: str) -> None:
    a = config.ami
    async with await AmiClient.connect(a.host, a.port, a.username, a.secret) as ami:
        for ch in await ami.action_list("CoreShowChannels"):
            if ch.get("Linkedid") == linkedid:
                await ami.action("Hangup", Channel=ch["Channel"])


async def reach_agent(http: httpx.Client, sup: dict[str, str], caller: RtpPhone) -> str:
    """Press 2 every 2 s until the console shows the call on the agent; its call id."""
    deadline = time.monotonic() + 60
    last_key = 0.0
    while time.monotonic() < deadline:
        r = await asyncio.to_thread(http.get, "/api/supervisor/calls", headers=sup)
        calls = [c for c in r.json().get("calls", []) if c["agent"] == AGENT]
        if calls:
            await asyncio.sleep(1.0)  # both directions of the bridge flowing
            return calls[0]["call_id"]
        if caller.remote is not None and time.monotonic() - last_key > 2.0:
            caller.press("2")
            last_key = time.monotonic()
        await asyncio.sleep(0.3)
    raise AssertionError(f"the call never reached agent {AGENT}: {r.text}")


def test_supervisor_listens_then_whispers_then_barges_then_leaves(spy_stack) -> None:
    s = spy_stack
    caller_rtp = RtpPhone(CARRIER_IP, CALLER_HZ).start()
    phones = {"caller": caller_rtp, "agent": s.agent, "supervisor": s.supervisor}
    http = httpx.Client(base_url=s.console, timeout=60)
    sup, agent, admin = login(http, "sup1"), login(http, f"agent{AGENT}"), login(http, "admin1")
    levels: dict[str, dict[str, dict[float, float]]] = {}
    answers: dict[str, httpx.Response] = {}
    answered_s: dict[str, float] = {}
    sup_phone = s.phones.phones[f"supervisor{SUPERVISOR}"]
    answered_before = [e.kind for e in sup_phone.events()].count("answered")
    onsets: dict[str, float | None] = {}

    async def scenario() -> str:
        proc = await place_caller(s, caller_rtp, hold_s=90)
        try:
            call_id = await reach_agent(http, sup, caller_rtp)
            url = f"/api/supervisor/calls/{call_id}/spy"
            body = {"mode": "listen", "phone": SUPERVISOR}
            answers["agent_tries"] = await asyncio.to_thread(http.post, url, json=body,
                                                             headers=agent)  # fmt: skip
            answers["bad_mode"] = await asyncio.to_thread(
                http.post, url, json={"mode": "shout", "phone": SUPERVISOR}, headers=sup
            )
            answers["no_call"] = await asyncio.to_thread(
                http.post, "/api/supervisor/calls/1.2/spy", json=body, headers=sup
            )
            levels["before"] = await heard(time.monotonic() - SETTLE_S, phones)
            for mode in ("listen", "whisper", "barge", "listen"):
                body = {"mode": mode, "phone": SUPERVISOR}
                send = http.post if mode == "listen" and "listen" not in levels else http.patch
                sent = time.monotonic()
                r = await asyncio.to_thread(send, url, json=body, headers=sup)
                answered_s.setdefault(mode, round(time.monotonic() - sent, 3))
                answers[mode if mode not in answers else "back_to_listen"] = r
                assert r.status_code in (200, 201), r.text
                levels[mode if mode not in levels else "back_to_listen"] = await heard(
                    time.monotonic(), phones
                )
                if mode not in onsets:
                    who, hz = EFFECT[mode]
                    onsets[mode] = phones[who].onset(hz, sent)
            answers["stop"] = await asyncio.to_thread(
                http.delete, url, params={"phone": SUPERVISOR}, headers=sup
            )
            await asyncio.sleep(1.0)
            answers["after_stop"] = await asyncio.to_thread(
                http.patch, url, json={"mode": "barge", "phone": SUPERVISOR}, headers=sup
            )
            await hang_up_call(s.config, call_id)
            await asyncio.wait_for(proc.wait(), 30)
            return call_id
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    try:
        call_id = asyncio.run(scenario())
        audit = http.get("/api/admin/audit", params={"count": 200}, headers=admin).json()
    finally:
        caller_rtp.stop()
        http.close()
    print("tone shares heard (caller 600 Hz, agent 1100 Hz, supervisor 1700 Hz):")
    print(json.dumps(levels, indent=1))
    print("API answered after (s):", answered_s)
    print("request sent → effect heard (s):", onsets)

    def hears(mode: str, who: str, hz: float) -> bool:
        share = levels[mode][who][hz]
        assert share >= HEARS or share <= SILENT, f"{mode}: {who} at {hz} Hz: {share} unclear"
        return share >= HEARS

    # the call itself: caller and agent hear each other, nobody hears the supervisor
    assert hears("before", "caller", AGENT_HZ) and hears("before", "agent", CALLER_HZ)
    # listen: the supervisor hears both; neither hears the supervisor
    assert hears("listen", "supervisor", CALLER_HZ) and hears("listen", "supervisor", AGENT_HZ)
    assert not hears("listen", "agent", SUPERVISOR_HZ)
    assert not hears("listen", "caller", SUPERVISOR_HZ)
    # whisper: the agent hears the supervisor, the caller does not
    assert hears("whisper", "agent", SUPERVISOR_HZ) and hears("whisper", "agent", CALLER_HZ)
    assert not hears("whisper", "caller", SUPERVISOR_HZ)
    assert hears("whisper", "supervisor", CALLER_HZ)
    # barge: both hear the supervisor
    assert hears("barge", "agent", SUPERVISOR_HZ) and hears("barge", "caller", SUPERVISOR_HZ)
    # and back to listen during the same call
    assert not hears("back_to_listen", "agent", SUPERVISOR_HZ)
    assert not hears("back_to_listen", "caller", SUPERVISOR_HZ)
    assert hears("back_to_listen", "supervisor", AGENT_HZ)

    assert answers["listen"].status_code == 201 and answers["listen"].json()["mode"] == "listen"
    assert answers["whisper"].json()["mode"] == "whisper"
    assert answers["stop"].status_code == 200, answers["stop"].text
    assert answers["after_stop"].status_code == 404
    assert answers["agent_tries"].status_code == 403
    assert answers["bad_mode"].status_code == 422 and "mode" in answers["bad_mode"].json()["detail"]
    assert answers["no_call"].status_code == 404
    answered_now = [e.kind for e in sup_phone.events()].count("answered") - answered_before
    assert answered_now == 1  # rung and answered once: switches do not ring it again

    spy_audit = [r for r in audit["records"] if "/spy" in str(r.get("action", ""))]
    mine = [r for r in spy_audit if f"call_id={call_id}" in str(r.get("target"))]
    assert any(r["who"] == f"agent{AGENT}" and r["outcome"] == 403 for r in mine), spy_audit
    details = [(r["who"], r["outcome"], r["detail"]) for r in mine if r["who"] == "sup1"]
    for detail in ("spy start mode=listen", "spy switch mode=whisper", "spy switch mode=barge",
                   "spy stop phone=9001"):  # fmt: skip
        assert any(d and d.startswith(detail) and st < 300 for _, st, d in details), details


def test_how_a_mode_switch_reaches_chanspy(spy_stack) -> None:
    """The measurement behind the PATCH (docs/decisions.md): a key played *out* to the
    supervisor's phone (PlayDTMF without Receive) does not switch ChanSpy; the same key
    emulated as *received* does (the PATCH, above); an AMI Redirect of the supervisor's channel
    to another mode's extension restarts ChanSpy in that mode without ringing the phone again."""
    s = spy_stack
    caller_rtp = RtpPhone(CARRIER_IP, CALLER_HZ).start()
    phones = {"caller": caller_rtp, "agent": s.agent, "supervisor": s.supervisor}
    http = httpx.Client(base_url=s.console, timeout=60)
    sup = login(http, "sup1")
    levels: dict[str, dict[str, dict[float, float]]] = {}
    onsets: dict[str, float | None] = {}
    sup_phone = s.phones.phones[f"supervisor{SUPERVISOR}"]
    rung_before = len(sup_phone.invites())

    async def scenario() -> None:
        proc = await place_caller(s, caller_rtp, hold_s=90)
        a = s.config.ami
        ami = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        try:
            call_id = await reach_agent(http, sup, caller_rtp)
            url = f"/api/supervisor/calls/{call_id}/spy"
            r = await asyncio.to_thread(
                http.post, url, json={"mode": "listen", "phone": SUPERVISOR}, headers=sup
            )
            assert r.status_code == 201, r.text
            channel = r.json()["channel"]
            sent = time.monotonic()
            reply = await ami.action("PlayDTMF", Channel=channel, Digit="5", Duration=120)
            assert reply["Response"] == "Success", reply
            levels["dtmf_sent_out"] = await heard(sent, phones)
            sent = time.monotonic()
            reply = await ami.action("Redirect", Channel=channel, Context="hotline-spy",
                                     Exten="whisper", Priority=1)  # fmt: skip
            assert reply["Response"] == "Success", reply
            levels["redirect_whisper"] = await heard(sent, phones)
            onsets["redirect_whisper"] = s.agent.onset(SUPERVISOR_HZ, sent)
            r = await asyncio.to_thread(http.delete, url, params={"phone": SUPERVISOR}, headers=sup)
            assert r.status_code == 200, r.text
            await hang_up_call(s.config, call_id)
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            await ami.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    try:
        asyncio.run(scenario())
    finally:
        caller_rtp.stop()
        http.close()
    print("tone shares heard:", json.dumps(levels, indent=1))
    print("Redirect sent → agent hears the supervisor (s):", onsets)
    sent_out, redirect = levels["dtmf_sent_out"], levels["redirect_whisper"]
    assert sent_out["agent"][SUPERVISOR_HZ] <= SILENT  # still listening only
    assert sent_out["supervisor"][AGENT_HZ] >= HEARS
    assert redirect["agent"][SUPERVISOR_HZ] >= HEARS  # whispering after the Redirect
    assert redirect["caller"][SUPERVISOR_HZ] <= SILENT
    assert len(sup_phone.invites()) == rung_before + 1  # rung once: never again on a switch
