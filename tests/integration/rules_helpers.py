"""A second real stack for the caller-rule scenarios (issue 4): instance ``rules``.

It is hotline.yaml with every port moved by the base offset + 500 (``instances.py``: SIP
15560, AMI 15538, AGI 15073, Redis 16890, agents 156xx by default) and small throttle
thresholds, so a few real calls walk a caller through the stages (第二十九条):

* warning from the 2nd call in an hour (``calls_per_hour: 1``), suspension from the 3rd
  (``calls_per_hour: 2``), no grace (``grace_minutes: 0``), suspended for 1 minute;
* ``ALLOWED`` is on the allow-list.

The 教育 seat's agent (``HARASS_AGENT``) is not a plain answering phone: tests start their own
sipp UAS for it that presses keys (the harassment feature code).
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from instances import stack_instance

from hotline import safe_yaml
from hotline.ami import AmiClient
from hotline.config import load_config
from testphones.sipp import CallerSpec, PhoneSet, control_args, offset_config, start_phone

REPO = Path(__file__).resolve().parents[2]
RULES_INSTANCE, RULES_OFFSET = stack_instance("rules")
ALLOWED = "13900000001"
HARASS_SEAT = "jiaoyu"
HARASS_AGENT = "1007"
THROTTLE = {
    "enabled": True,
    "warning": {"calls_per_hour": 1, "calls_per_day": 100, "minutes_per_day": 1000,
                "no_demand_per_day": 100, "harassment_flags": 50},
    "suspension": {"calls_per_hour": 2, "calls_per_day": 200, "minutes_per_day": 1400,
                   "no_demand_per_day": 200, "harassment_flags": 100},
    "grace_minutes": 0,
    "suspension_minutes": 1,
    "referral_after": 3,
    "referral_window_days": 180,
    "allow_list": [ALLOWED],
}  # fmt: skip
EVENTS = ("UserEvent", "DialBegin", "DialEnd", "Newchannel", "AgentConnect", "Hangup")


def rules_config_data(tmp: Path) -> dict:
    base = safe_yaml.load_file(REPO / "hotline.yaml")
    data = offset_config(base, RULES_OFFSET, tmp)
    data["menus"]["main"]["timeout_s"] = 3
    data["menus"]["main"]["retries"] = 2
    data.setdefault("speech", {})["mode"] = "off"  # keypad scenarios: nobody is asked to speak
    data["throttle"] = {**data.get("throttle", {}), **THROTTLE}
    data["throttle"]["key_file"] = str(tmp / "secrets" / "pii.key")
    return data


@pytest.fixture(scope="session")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The ``rules`` stack with phones for every agent but ``HARASS_AGENT`` and the trunk."""
    from conftest import Hotline, _why_not_runnable

    from runtime.procs import StackError
    from runtime.stack import Stack

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("hotline-rules")
    config_path = tmp / f"{RULES_INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(rules_config_data(tmp), allow_unicode=True))
    config = load_config(config_path)
    stack = Stack(config_path, instance=RULES_INSTANCE, run_dir=tmp / "run")
    phones = PhoneSet()
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the rules stack did not come up: {exc}", pytrace=False)
        log_start = stack.asterisk_log.stat().st_size
        stack.cli("agi set debug on")
        trunk = config.trunks.emergency
        for role, host, port in [
            *((a.endpoint, a.host, a.port) for a in config.agents if a.id != HARASS_AGENT),
            ("emergency", trunk.host, trunk.port),
        ]:
            phones.phones[role] = start_phone(role, host, port, tmp / "phones")
        yield Hotline(config, config_path, stack, phones, tmp, log_start)
    finally:
        phones.stop()
        stack.down()


# ---- calls with the AMI events the hotline emitted for them --------------------------------
async def place_watching(h: object, spec: CallerSpec, timeout_s: float = 180.0) -> dict:
    """``h.place_async(spec)`` plus ``events``: every UserEvent / dial / hang-up event of the
    call (by its linkedid), each with ``t`` = seconds since the caller's channel appeared."""
    a = h.config.ami  # type: ignore[attr-defined]
    client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
    seen: list[tuple[float, dict[str, str]]] = []
    queue = client.subscribe()

    async def collect() -> None:
        while True:
            e = await queue.get()
            if e.get("Event") in EVENTS:
                seen.append((time.monotonic(), e))

    task = asyncio.create_task(collect())
    try:
        call = await h.place_async(spec, timeout_s)  # type: ignore[attr-defined]
    finally:
        task.cancel()
        client.unsubscribe(queue)
        await client.close()
    firsts = [t for t, e in seen if e.get("Linkedid") == call["linkedid"]]
    start = firsts[0] if firsts else None
    call["events"] = [
        {**e, "t": round(t - start, 3) if start is not None else None}
        for t, e in seen
        if call["linkedid"] and e.get("Linkedid") == call["linkedid"]
    ]
    return call


def user_events(call: dict, kind: str) -> list[dict]:
    return [
        e for e in call["events"] if e.get("Event") == "UserEvent" and e.get("UserEvent") == kind
    ]


def emergency_dial_at(call: dict) -> float | None:
    """Seconds from the caller's channel to the INVITE towards the emergency trunk."""
    for e in call["events"]:
        if e.get("Event") == "DialBegin" and e.get("DestChannel", "").startswith(
            "PJSIP/emergency-"
        ):
            return e["t"]
    return None


def invites_for(phone: object, caller: str) -> list:
    """The INVITEs a phone received carrying ``caller`` in From or P-Asserted-Identity."""
    return [i for i in phone.invites() if caller in (i.from_user, i.pai_user)]  # type: ignore[attr-defined]


def run_all(*coros: object) -> list[dict]:
    async def gather() -> list[dict]:
        return list(await asyncio.gather(*coros))  # type: ignore[arg-type]

    return asyncio.run(gather())


def played(commands: list[str], prompt: str) -> int:
    """How often the IVR asked Asterisk to play ``hotline/<prompt>``."""
    heads = (f"STREAM FILE hotline/{prompt} ", f'STREAM FILE "hotline/{prompt}" ')
    return sum(1 for c in commands if c.startswith(heads))


# ---- an agent's phone that presses keys (RFC 4733) after answering ---------------------------
AGENT_KEYS_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent answers, logs the INVITE, presses keys">
  <recv request="INVITE" crlf="true"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]agent[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=agent 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="1500"/>
  <nop><action><exec play_pcap_audio="KEYS_PCAP"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def rfc4733_pcap(path: Path, keys: str, payload_type: int = 101) -> None:
    """A pcap of RFC 4733 telephone-events pressing ``keys`` in one RTP stream."""
    codes = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
    packets: list[tuple[float, bytes]] = []
    seq, ts, t = 1, 8000, 0.0
    for key in keys:
        for i in range(8):
            end = i >= 5
            header = struct.pack(
                "!BBHII", 0x80, (0x80 if i == 0 else 0) | payload_type, seq, ts, 0x5EED1234
            )
            body = struct.pack("!BBH", codes[key], (0x80 if end else 0) | 10, 160 * min(i + 1, 5))
            packets.append((t, header + body))
            seq += 1
            t += 0.02
        ts += 160 * 5 + 1600
        t += 0.2
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, rtp in packets:
            udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
            frame = b"\0" * 12 + b"\x08\x00" + ip + udp
            sec, usec = int(when), int((when % 1) * 1e6)
            fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)


def start_key_pressing_agent(
    h: object, agent_id: str, keys: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """A one-call sipp UAS for ``agent<id>`` that presses ``keys`` 1.5 s after answering;
    returns the process and the directory of its SIP message trace."""
    agent = next(a for a in h.config.agents if a.id == agent_id)  # type: ignore[attr-defined]
    workdir.mkdir(parents=True, exist_ok=True)
    pcap = workdir / "keys.pcap"
    rfc4733_pcap(pcap, keys)
    scenario = workdir / "agent.xml"
    scenario.write_text(AGENT_KEYS_UAS.replace("KEYS_PCAP", str(pcap)))
    proc = subprocess.Popen(
        ["sipp", "-sf", str(scenario), "-i", agent.host, "-p", str(agent.port), "-m", "1",
         "-mi", agent.host, "-mp", str(agent.port + 700), *control_args(agent.host),
         "-nostdin", "-timeout", "120", "-trace_msg"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    return proc, workdir


def caller_flags_seen(trace_dir: Path, caller: str) -> list[str]:
    """The X-Hotline-Caller-Flag values of INVITEs from ``caller`` in sipp message traces."""
    flags = []
    for log in trace_dir.glob("*messages.log"):
        for msg in log.read_text(errors="replace").split("INVITE sip:")[1:]:
            head = msg.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
            if f"sip:{caller}@" not in head:
                continue
            for line in head.splitlines():
                if line.lower().startswith("x-hotline-caller-flag:"):
                    flags.append(line.split(":", 1)[1].strip())
    return flags
