"""The sipp test network: argument checks, log/stat parsing, media plans, and a real sipp caller
calling a real sipp phone on loopback (no Asterisk)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from cli.commands.call import analyse, endpoint_of
from hotline import safe_yaml
from testphones.sipp import (
    CALLER_XML,
    MEDIA_MARKER,
    TEST_RTP_TIMEOUT_S,
    CallerSpec,
    SippError,
    caller_argv,
    caller_scenario,
    check_number,
    digit_plan,
    key_steps,
    missing_dtmf_samples,
    offset_config,
    parse_phone_log,
    parse_stat_csv,
    prepare_media,
    run_caller,
    sip_display_name,
    sipp_duration_ms,
    start_phone,
    stats_counts,
    stop_phone,
)

REPO = Path(__file__).resolve().parents[2]
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")


# ---- keys ---------------------------------------------------------------------------------
def test_a_caller_pressing_9_then_2_waits_for_the_menu_then_spaces_the_keys() -> None:
    assert key_steps("92", first_after_s=18.0, gap_s=4.0) == [(18.0, "9"), (4.0, "2")]
    assert digit_plan("92", 18.0, 4.0) == "18000:9;4000:2"
    assert digit_plan([(0.5, "*"), (0.25, "#")]) == "500:*;250:#"


@pytest.mark.parametrize(
    ("digits", "message"),
    [("2A", "keys are 0-9"), ([(1.0, "1"), (0.1, "2")], "0.2 s apart"), ([(900, "1")], "0..600")],
)
def test_keys_a_phone_cannot_press_are_refused(digits, message: str) -> None:
    with pytest.raises(SippError, match=message):
        key_steps(digits)


# ---- caller identity ----------------------------------------------------------------------
def test_a_caller_name_with_quotes_and_backslashes_becomes_a_valid_quoted_string() -> None:
    assert sip_display_name('Wang "Boss" \\x') == 'Wang \\"Boss\\" \\\\x'
    assert sip_display_name("张三\u2028EXEC Dial") == "张三\u2028EXEC Dial"


@pytest.mark.parametrize("bad", ["a\nEXEC Dial", "a\rb", "nul\0"])
def test_a_caller_name_sip_cannot_carry_is_refused_not_changed(bad: str) -> None:
    with pytest.raises(SippError, match="SIP cannot carry"):
        sip_display_name(bad)


def test_caller_numbers_are_digits_or_anonymous() -> None:
    assert check_number("+8657112345") == "+8657112345"
    assert check_number("anonymous") == "anonymous"
    for bad in ("1380000abc", "", "138 0000", "1;x=y"):
        with pytest.raises(SippError):
            check_number(bad)


def test_the_caller_command_line_binds_the_carrier_address_and_sets_every_variable(
    tmp_path: Path,
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed")
    spec = CallerSpec("127.0.0.1", 15060, caller="13900001111", name='Li "Si"', digits="3000:2")
    argv = caller_argv(spec, tmp_path, 30)
    pairs = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "-set"}
    assert argv[1] == "127.0.0.1:15060"
    assert argv[argv.index("-i") + 1] == "127.0.0.2"
    assert pairs == {
        "dialed": "12345",
        "caller": "13900001111",
        "name": 'Li \\"Si\\"',
        "digits": "3000:2",
        "hold_ms": "10000",
    }
    with pytest.raises(SippError):
        caller_argv(CallerSpec("127.0.0.1", 15060, name="x\ny"), tmp_path, 30)


# ---- media --------------------------------------------------------------------------------
def _rtp(pcap: Path) -> list[tuple[float, int, int, int, bytes]]:
    data, pos, out = pcap.read_bytes(), 24, []
    while pos < len(data):
        sec, usec, n, _ = struct.unpack("<IIII", data[pos : pos + 16])
        frame = data[pos + 16 : pos + 16 + n]
        _v, m_pt, seq, ts, _ssrc = struct.unpack("!BBHII", frame[42:54])
        out.append((sec + usec / 1e6, m_pt & 0x7F, seq, ts, frame[54:]))
        pos += 16 + n
    return out


def test_one_key_uses_sip_testers_sample_several_keys_one_ordered_stream(tmp_path: Path) -> None:
    assert prepare_media([(18.0, "2")], tmp_path) == ("18000:2", None, 0.0)

    plan, pcap, seconds = prepare_media([(2.0, "#"), (1.0, "2")], tmp_path)

    assert plan == "" and pcap is not None and seconds >= 3.0
    packets = _rtp(pcap)
    seqs = [p[2] for p in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    events = [(t, body[0]) for t, pt, _s, _ts, body in packets if pt == 101]
    first_by_code = {code: t for t, code in reversed(events)}
    assert first_by_code == {11: pytest.approx(2.0), 2: pytest.approx(3.0)}  # '#' then '2'
    ends = [p for p in packets if p[1] == 101 and p[4][1] & 0x80]
    assert len(ends) == 6  # each key's end packet goes three times
    timestamps = [p[3] for p in packets if p[1] == 8]
    assert timestamps == sorted(timestamps)


def test_speech_follows_the_last_key(tmp_path: Path) -> None:
    import wave

    import numpy as np

    wav = tmp_path / "voice.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        t = np.arange(8000) / 8000
        w.writeframes((10000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes())

    _plan, pcap, seconds = prepare_media([(1.0, "5")], tmp_path, wav, speech_after_s=0.5)

    assert pcap is not None and seconds == pytest.approx(1.0 + 0.5 + 1.0 + 0.2, abs=0.05)
    loud = [t for t, pt, _s, _ts, body in _rtp(pcap) if pt == 8 and body != b"\xd5" * 160]
    assert loud and loud[0] == pytest.approx(1.5, abs=0.03) and loud[-1] < 2.55


def test_the_media_pcap_is_played_right_after_the_answer(tmp_path: Path) -> None:
    assert caller_scenario(tmp_path, None) == CALLER_XML
    pcap = tmp_path / "m.pcap"
    pcap.write_bytes(b"")
    text = caller_scenario(tmp_path, pcap).read_text()
    assert MEDIA_MARKER not in text and f'play_pcap_audio="{pcap.resolve()}"' in text
    with pytest.raises(SippError):
        caller_scenario(tmp_path, tmp_path / 'bad"name.pcap')


# ---- what sipp leaves behind --------------------------------------------------------------
def test_a_phone_log_is_read_back_even_when_a_caller_name_spans_lines() -> None:
    log = (
        'invite\tagent1002\tcid-1\tsip:agent1002@127.0.0.1\tFrom: "Wang\nwu" '
        "<sip:13800001002@127.0.0.1>;tag=x\t"
        "P-Asserted-Identity: <sip:13800001002@h>\tTo: <sip:a@b>\n"
        "answered\tagent1002\tcid-1\tcseq 5\n"
        "invite\temergency\tcid-2\tsip:119@127.0.0.3:15060\tFrom: <sip:13800007009@h>\t\tTo: x\n"
        "bye\tagent1002\tcid-1\n"
    )
    events = parse_phone_log(log)
    assert [e.kind for e in events] == ["invite", "answered", "invite", "bye"]
    assert events[0].from_user == "13800001002" and events[0].pai_user == "13800001002"
    assert "Wang\nwu" in events[0].from_header
    assert events[2].uri_user == "119" and events[2].pai_user == ""


def test_sipp_statistics_are_read_from_the_last_row(tmp_path: Path) -> None:
    cols = ["StartTime", "TotalCallCreated", "CurrentCall", "SuccessfulCall(C)",
            "FailedCall(C)", "FailedMaxUDPRetrans(C)", "Retransmissions(C)",
            "ResponseTime1(C)"]  # fmt: skip
    rows = [["t0", "1", "1", "0", "0", "0", "0", "00:00:00:000000"],
            ["t1", "40", "2", "35", "3", "3", "9", "00:00:01:250000"]]  # fmt: skip
    (tmp_path / "stat.csv").write_text("\n".join(";".join(r) + ";" for r in [cols, *rows]))

    counts = stats_counts(parse_stat_csv(tmp_path / "stat.csv"))

    assert counts["created"] == 40 and counts["successful"] == 35 and counts["failed"] == 3
    assert counts["failed_reasons"] == {"MaxUDPRetrans": 3}
    assert counts["response_time_ms"] == 1250.0
    assert sipp_duration_ms("00:00:00:000000") is None
    assert parse_stat_csv(tmp_path / "missing.csv") == {}


def test_a_test_instance_moves_every_port_and_leaves_the_original_alone(tmp_path: Path) -> None:
    base = safe_yaml.load_file(REPO / "hotline.yaml")
    moved = offset_config(base, 10000, tmp_path)
    assert moved["sip"]["port"] == base["sip"]["port"] + 10000 == 15060
    for key in ("ami", "agi", "redis"):
        assert moved[key]["port"] == base[key]["port"] + 10000
    assert [a["port"] for a in moved["agents"]] == [a["port"] + 10000 for a in base["agents"]]
    assert moved["trunks"]["emergency"]["port"] == 15060
    assert base["sip"]["port"] == 5060
    # silent sipp callers are not hung up as dead legs while they hold on
    assert moved["sip"]["rtp_timeout_s"] == TEST_RTP_TIMEOUT_S > base["sip"]["rtp_timeout_s"]
    with pytest.raises(SippError, match="out of range"):
        offset_config(base, 62000)


# ---- following a call on AMI --------------------------------------------------------------
def test_the_call_is_followed_by_its_linkedid_and_other_calls_are_ignored() -> None:
    mine, other = "1700000000.10", "1700000000.20"
    ev = [
        {"Event": "UserEvent", "UserEvent": "HotlineCall", "Channel": "PJSIP/carrier-00000009",
         "CallerIDNum": "138", "SipCallId": "2-99@127.0.0.2", "Linkedid": other,
         "Uniqueid": other},
        {"Event": "UserEvent", "UserEvent": "HotlineCall", "Channel": "PJSIP/carrier-0000000a",
         "CallerIDNum": "138", "SipCallId": "1-99@127.0.0.2", "Linkedid": mine,
         "Uniqueid": mine},
        {"Event": "DTMFEnd", "Channel": "PJSIP/carrier-0000000a", "Digit": "2",
         "Direction": "Received", "Linkedid": mine},
        {"Event": "UserEvent", "UserEvent": "HotlineRoute", "Seat": "zonghe",
         "Queue": "seat_zonghe", "Path": "main>0", "Linkedid": other},
        {"Event": "UserEvent", "UserEvent": "HotlineRoute", "Seat": "gjj", "Queue": "seat_gjj",
         "Path": "main>2", "Linkedid": mine},
        {"Event": "AgentConnect", "Queue": "seat_gjj", "DestChannel": "PJSIP/agent1009-0000000c",
         "Interface": "PJSIP/agent1009", "Linkedid": mine},
        {"Event": "Hangup", "Channel": "PJSIP/carrier-0000000a", "Cause-txt": "Normal Clearing",
         "Linkedid": mine},
    ]  # fmt: skip
    facts = analyse([(float(i), e) for i, e in enumerate(ev)], "138", {"1-99@127.0.0.2"}).as_dict()
    assert facts["linkedid"] == mine and facts["ivr_path"] == "main>2"
    assert facts["seat"] == "gjj" and facts["dtmf"] == ["2"] and not facts["fallback"]
    assert facts["agent"] == {"endpoint": "agent1009", "channel": "PJSIP/agent1009-0000000c"}
    assert facts["duration_s"] == 5.0 and facts["hangup_cause"] == "Normal Clearing"
    assert analyse([(0.0, e) for e in ev], "137").linkedid == ""
    # the same caller number twice: only the SIP Call-ID tells the calls apart
    assert analyse([(0.0, e) for e in ev], "138", {"2-99@127.0.0.2"}).linkedid == other
    assert endpoint_of("PJSIP/emergency-0000001f") == "emergency"


# ---- real sipp, caller to phone ------------------------------------------------------------
@needs_sipp
def test_a_sipp_caller_reaches_a_sipp_phone_which_logs_the_invite(tmp_path: Path) -> None:
    from testphones.sipp import free_udp_port

    port = free_udp_port("127.0.0.1")
    phone = start_phone("agent4242", "127.0.0.1", port, tmp_path / "phone", ring_s=0.2)
    try:
        spec = CallerSpec("127.0.0.1", port, dialed="12345", caller="13811112222",
                          name='A "quoted" name', hold_s=1.0)  # fmt: skip
        started = time.monotonic()
        result = run_caller(spec, tmp_path / "caller", timeout_s=20)
        took = time.monotonic() - started
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(e.kind == "bye" for e in phone.events()):
            time.sleep(0.1)
    finally:
        stop_phone(phone)

    assert result.ok, result.as_dict()
    assert result.successful == 1 and result.failed == 0 and result.exit_code == 0
    assert 1.0 <= took < 10
    assert any(line.startswith("hangup by=caller") for line in result.logs)
    kinds = [e.kind for e in phone.events()]
    assert kinds == ["invite", "answered", "bye"]
    invite = phone.invites()[0]
    assert invite.uri_user == "12345" and invite.from_user == "13811112222"
    assert '\\"quoted\\"' in invite.from_header
    assert not phone.running()


@needs_sipp
def test_a_caller_to_nowhere_fails_within_its_time_limit(tmp_path: Path) -> None:
    from testphones.sipp import free_udp_port

    spec = CallerSpec("127.0.0.1", free_udp_port("127.0.0.1"), hold_s=1.0)
    result = run_caller(spec, tmp_path, timeout_s=3)
    assert not result.ok and result.successful == 0
    assert result.duration_s < 15


@needs_sipp
def test_a_phone_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(SippError, match="agent7"):
            start_phone("agent7", "127.0.0.1", s.getsockname()[1], tmp_path, wait_s=3)


def test_missing_key_samples_are_named(tmp_path: Path) -> None:
    assert len(missing_dtmf_samples(tmp_path)) == 12
    for name in ("dtmf_2833_0.pcap", "dtmf_2833_star.pcap", "dtmf_2833_pound.pcap"):
        (tmp_path / name).write_bytes(b"")
    missing = missing_dtmf_samples(tmp_path)
    assert len(missing) == 9 and "dtmf_2833_0.pcap" not in missing
    assert "dtmf_2833_9.pcap" in missing


# ---- sipp's remote-control socket (issue 8, finding 12) ------------------------------------
def _udp_sockets_of(pid: int) -> list[tuple[str, int]]:
    """``(address, port)`` of every IPv4/IPv6 UDP socket process ``pid`` holds."""
    import ipaddress
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            parts = row.split()
            if parts[9] in inodes:
                hexaddr, hexport = parts[1].split(":")
                raw = bytes.fromhex(hexaddr)
                addr = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                out.append((str(ipaddress.ip_address(addr)), int(hexport, 16)))
    return out


def test_every_sipp_command_line_binds_its_control_socket_to_its_own_address(
    tmp_path: Path,
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed")
    argv = caller_argv(CallerSpec("127.0.0.1", 15060), tmp_path, 30)
    assert argv[argv.index("-ci") + 1] == argv[argv.index("-i") + 1] == "127.0.0.2"
    assert 1024 < int(argv[argv.index("-cp") + 1]) <= 65535


@needs_sipp
def test_a_phone_listens_on_its_own_address_only_not_on_8888(tmp_path: Path) -> None:
    from testphones.sipp import free_udp_port

    port = free_udp_port("127.0.0.1")
    phone = start_phone("agent4343", "127.0.0.1", port, tmp_path / "phone", ring_s=0.2)
    try:
        assert phone.proc is not None
        sockets = _udp_sockets_of(phone.proc.pid)
    finally:
        stop_phone(phone)
    assert ("127.0.0.1", port) in sockets
    assert len(sockets) == 4, sockets  # SIP, RTP, RTCP (-mp) and the control socket (-cp)
    assert {addr for addr, _ in sockets} == {"127.0.0.1"}, sockets
    assert not any(8888 <= p <= 8947 for _, p in sockets), sockets


# ---- every legitimate ending of a call (issue 8, finding 17) --------------------------------
FAR_END_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<scenario name="far end">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="caller_uri" />
    </action>
  </recv>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]far[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=far 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
]]></send>
  <recv request="ACK">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller_from" />
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="caller_to" />
      <log message="dialog [$caller_from] [$caller_to] [$caller_uri]" />
    </action>
  </recv>
"""
FAR_BYE = """  <send><![CDATA[
BYE [$caller_uri] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$caller_to]
To:[$caller_from]
Call-ID: [call_id]
CSeq: 9 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
"""
ANSWER_CALLER_BYE = """  <send><![CDATA[
SIP/2.0 {code}
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
"""
REINVITE = """  <pause milliseconds="300" />
  <send retrans="500"><![CDATA[
INVITE [$caller_uri] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$caller_to]
To:[$caller_from]
Call-ID: [call_id]
CSeq: 8 INVITE
Contact: <sip:far@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" />
"""
ENDINGS = {
    # the caller's BYE and the far end's cross: the far end answers only after sending its own
    "crossed": (
        '  <recv request="BYE" />\n'
        + FAR_BYE
        + ANSWER_CALLER_BYE.format(code="200 OK")
        + '  <recv response="200" />\n',
        "both",
    ),
    # the far end hangs up right after a re-INVITE, instead of acknowledging its answer
    "bye_after_reinvite": (REINVITE + FAR_BYE + '  <recv response="200" />\n', "far_end"),
    # the dialog is already gone when the caller hangs up
    "gone": (
        '  <recv request="BYE" />\n' + ANSWER_CALLER_BYE.format(code="481 No Dialog"),
        "caller",
    ),
}


@needs_sipp
@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_the_caller_accepts_every_way_a_call_can_end(tmp_path: Path, ending: str) -> None:
    from testphones.sipp import control_args, free_udp_port

    steps, ended_by = ENDINGS[ending]
    scenario = tmp_path / "far.xml"
    scenario.write_text(FAR_END_HEAD + steps + "</scenario>\n")
    port = free_udp_port("127.0.0.1")
    far = subprocess.Popen(
        ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
         "-mi", "127.0.0.1", "-mp", str(free_udp_port("127.0.0.1", pair=True)),
         *control_args("127.0.0.1"), "-nostdin", "-timeout", "20", "-timeout_error"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        result = run_caller(CallerSpec("127.0.0.1", port, hold_s=1.0), tmp_path / "c", 15)
        far_code = far.wait(20)
    finally:
        if far.poll() is None:
            far.kill()
            far.wait()
    assert result.ok, result.as_dict()
    assert result.ended_by == [ended_by], result.as_dict()
    assert far_code == 0  # the far end saw the exchange it scripted


# ---- a load of many callers (issue 8, finding 14) ------------------------------------------
@needs_sipp
def test_a_load_run_places_each_call_from_its_own_number(tmp_path: Path) -> None:
    from testphones.sipp import free_udp_port

    port = free_udp_port("127.0.0.1")
    phone = start_phone("agent4545", "127.0.0.1", port, tmp_path / "phone", ring_s=0.1)
    numbers = ("13700000001", "13700000002", "13700000003")
    try:
        spec = CallerSpec("127.0.0.1", port, hold_s=0.5, calls=3, rate=10, callers=numbers)
        result = run_caller(spec, tmp_path / "load", timeout_s=20)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(phone.invites()) < 3:
            time.sleep(0.1)
    finally:
        stop_phone(phone)
    assert result.ok and result.successful == 3, result.as_dict()
    assert sorted(e.from_user for e in phone.invites()) == list(numbers)
    assert sorted(e.pai_user for e in phone.invites()) == list(numbers)


def test_a_load_run_needs_a_number_for_every_call(tmp_path: Path) -> None:
    spec = CallerSpec("127.0.0.1", 15060, calls=3, callers=("13700000001", "13700000001"))
    with pytest.raises(SippError, match="3 calls need 3 different caller numbers"):
        spec.validate()


def test_the_load_bench_gives_every_call_its_own_number() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sipp_load", REPO / "bench" / "sipp_load.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    numbers = bench.caller_numbers(2400)
    assert len(set(numbers)) == 2400 and all(len(n) == 11 for n in numbers)
