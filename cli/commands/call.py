"""``hotline call``: place one test call into the running stack with sipp and say what happened.

::

    hotline call --digits 2                 # press 2 in the main menu
    hotline call --digits 92 --caller 13900001111 --caller-name 张三 --hold 20
    hotline call --audio caller.wav --digits 0   # speak after the menu; prints the draft

It subscribes to AMI before the INVITE goes out, finds the call by the dialplan's
``HotlineCall`` event carrying sipp's SIP Call-ID, follows it by its channel and linkedid
and prints JSON: the IVR path, seat and queue (``HotlineRoute``), whether the dialplan fell
back (``HotlineFallback``), the emergency line (``HotlineEmergency``, the emergency trunk's
channel), which agent endpoint answered (``AgentConnect``/``BridgeEnter``), the AGI commands
Asterisk executed (``AGIExec`` events, when the AMI user may read the ``agi`` class), the
keys Asterisk received, the duration and sipp's own result.  With ``--audio`` the caller speaks
the wav after the keys (after the "请简要说出您要反映的事项" prompt, ``speech.mode:
after_choice``), and the output adds the call's ticket draft (``draft``) as the IVR stored it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import secrets
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from hotline.ami import AmiClient, AmiError
from hotline.config import ConfigError, HotlineConfig, load_config
from testphones.sipp import (
    CallerSpec,
    SippError,
    SippResult,
    key_steps,
    prepare_media,
    run_caller_async,
)

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "sounds" / "zh"
NOISE = frozenset(
    {"VarSet", "RTCPSent", "RTCPReceived", "Newexten", "DeviceStateChange", "NewAccountCode"}
)


def prompt_seconds(name: str, sounds: Path = SOUNDS) -> float | None:
    """Length of a committed prompt (``sounds/zh/<name>.wav``), None if it is not there."""
    try:
        with wave.open(str(sounds / f"{name}.wav")) as w:
            return w.getnframes() / w.getframerate()
    except (OSError, wave.Error, EOFError):
        return None


def first_key_after(config: HotlineConfig, margin_s: float = 2.0) -> float:
    """When a caller can first press a key: the greeting (played whole) plus a margin."""
    greeting = config.menus["main"].prompts[0]
    seconds = prompt_seconds(greeting)
    return (seconds if seconds is not None else 16.0) + margin_s


@dataclass
class CallFacts:
    """What AMI told us about one call (all events with its linkedid)."""

    caller: str
    linkedid: str = ""
    channel: str = ""
    ivr_path: str | None = None
    seat: str | None = None
    queue: str | None = None
    agent_endpoint: str | None = None
    agent_channel: str | None = None
    emergency_line: str | None = None
    emergency_reason: str | None = None
    emergency_channel: str | None = None
    emergency_dial_status: str | None = None
    fallback: bool = False
    fallback_reasons: list[str] = field(default_factory=list)
    agi_commands: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    hangup_cause: str | None = None
    duration_s: float | None = None
    events: int = 0

    def as_dict(self) -> dict[str, object]:
        out = dict(self.__dict__)
        out["agent"] = (
            {"endpoint": self.agent_endpoint, "channel": self.agent_channel}
            if self.agent_endpoint
            else None
        )
        out["emergency"] = (
            {
                "line": self.emergency_line,
                "reason": self.emergency_reason,
                "channel": self.emergency_channel,
                "dial_status": self.emergency_dial_status,
            }
            if self.emergency_line
            else None
        )
        for key in ("agent_endpoint", "agent_channel", "emergency_line", "emergency_reason",
                    "emergency_channel", "emergency_dial_status"):  # fmt: skip
            out.pop(key)
        return out


_ENDPOINT_RE = re.compile(r"^PJSIP/([^-/]+)-[0-9a-f]+$")


def endpoint_of(channel: str) -> str:
    """``PJSIP/agent1002-0000000b`` → ``agent1002``."""
    m = _ENDPOINT_RE.match(channel or "")
    return m.group(1) if m else ""


_CALL_ID_RE = re.compile(r"\bcall_id=(\S+)")


def sip_call_ids(result: SippResult) -> set[str]:
    """The SIP Call-IDs of the calls sipp placed (its scenario logs ``call_id=…``)."""
    return {m.group(1) for line in result.logs for m in _CALL_ID_RE.finditer(line)}


def analyse(
    events: list[tuple[float, dict[str, str]]], caller: str, sip_call_ids: set[str] | None = None
) -> CallFacts:
    """Find the call by the dialplan's ``HotlineCall`` event (by the SIP Call-ID sipp used;
    without one, by the normalised caller number) and read its events by linkedid."""
    facts = CallFacts(caller=caller)
    start = None
    for t, e in events:
        if e.get("Event") != "UserEvent" or e.get("UserEvent") != "HotlineCall":
            continue
        if endpoint_of(e.get("Channel", "")) != "carrier":
            continue
        if (e.get("SipCallId") in sip_call_ids) if sip_call_ids else e.get("CallerIDNum") == caller:
            facts.linkedid = e.get("Linkedid") or e.get("Uniqueid", "")
            facts.channel = e["Channel"]
            start = t
            break
    if not facts.linkedid:
        return facts
    mine = [(t, e) for t, e in events if e.get("Linkedid") == facts.linkedid]
    facts.events = len(mine)
    for t, e in mine:
        name = e.get("Event", "")
        chan = e.get("Channel", "")
        if name == "UserEvent":
            kind = e.get("UserEvent", "")
            if kind == "HotlineRoute":
                facts.ivr_path = e.get("Path")
                facts.seat = e.get("Seat")
                facts.queue = e.get("Queue")
            elif kind == "HotlineFallback":
                facts.fallback = True
                facts.fallback_reasons.append(e.get("Reason", ""))
                facts.seat = facts.seat or e.get("Seat")
                facts.queue = e.get("Queue") or facts.queue
            elif kind == "HotlineEmergency":
                facts.emergency_line = e.get("Line")
                facts.emergency_reason = e.get("Reason")
        elif name == "AgentConnect" and not facts.agent_endpoint:
            facts.agent_endpoint = endpoint_of(e.get("DestChannel", "")) or endpoint_of(
                e.get("Interface", "") + "-0"
            )
            facts.agent_channel = e.get("DestChannel")
            facts.queue = e.get("Queue") or facts.queue
        elif name == "BridgeEnter" and endpoint_of(chan).startswith("agent"):
            facts.agent_endpoint = facts.agent_endpoint or endpoint_of(chan)
            facts.agent_channel = facts.agent_channel or chan
        elif name == "DialBegin" and endpoint_of(e.get("DestChannel", "")) == "emergency":
            facts.emergency_channel = e.get("DestChannel")
        elif name == "DialEnd" and endpoint_of(e.get("DestChannel", "")) == "emergency":
            facts.emergency_dial_status = e.get("DialStatus")
        elif name == "AGIExecStart" and chan == facts.channel:
            facts.agi_commands.append(e.get("Command", ""))
        elif name == "DTMFEnd" and chan == facts.channel and e.get("Direction") == "Received":
            facts.dtmf.append(e.get("Digit", ""))
        elif name == "Hangup" and chan == facts.channel:
            facts.hangup_cause = e.get("Cause-txt") or e.get("Cause")
            if start is not None:
                facts.duration_s = round(t - start, 3)
    return facts


async def place_call(
    config: HotlineConfig,
    spec: CallerSpec,
    workdir: Path,
    timeout_s: float = 120.0,
    settle_s: float = 1.5,
) -> dict[str, object]:
    """Place ``spec`` into the stack of ``config`` while following AMI; return the facts."""
    ami = config.ami
    client = await AmiClient.connect(ami.host, ami.port, ami.username, ami.secret)
    events: list[tuple[float, dict[str, str]]] = []
    queue = client.subscribe()

    async def collect() -> None:
        while True:
            e = await queue.get()
            if e.get("Event") not in NOISE:
                events.append((time.monotonic(), e))

    collector = asyncio.create_task(collect())
    try:
        result: SippResult = await run_caller_async(spec, workdir, timeout_s)
        deadline = time.monotonic() + settle_s + 3.0
        call_ids = sip_call_ids(result)
        while time.monotonic() < deadline:
            facts = analyse(events, spec.caller, call_ids)
            if facts.hangup_cause is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle_s)  # the agent's / trunk's hang-up events
    finally:
        collector.cancel()
        client.unsubscribe(queue)
        await client.close()
    facts = analyse(events, spec.caller, call_ids)
    out = facts.as_dict()
    out["sipp"] = result.as_dict()
    return out


def default_hold(config: HotlineConfig, audio: Path | None) -> float:
    """Seconds on the line after the media: 10, or 20 when the caller speaks (end of speech,
    the draft, the transfer), or 25 when the IVR asks for speech the caller does not give."""
    if audio is not None:
        return 20.0
    return 10.0 if config.speech.mode == "off" else 25.0


async def fetch_draft(
    config: HotlineConfig, call_id: str, wait_s: float = 30.0, since: float | None = None
) -> dict[str, object] | None:
    """The call's ticket draft: the ticket store's (kept by the IVR), else the speech service's
    ``draft`` event for the call on the call event stream (written after ``since``, default
    the last 10 minutes); waits up to ``wait_s`` for it.  ``None`` if there is none."""
    from calls.stream import CallStream
    from hotline.call import CallEvent
    from tickets import open_store

    def mine(event: CallEvent) -> bool:
        return event.kind == "draft" and event.call_id == call_id

    store = open_store(config)
    stream = CallStream.from_config(config)
    start = time.time() - 600.0 if since is None else since
    deadline = time.monotonic() + wait_s
    event = None
    try:
        while True:
            try:
                draft = await store.get_draft(call_id)
            except Exception:
                draft = None
            if draft is not None:
                draft.pop("caller", None)  # the caller's number is in the call facts
                return draft
            with contextlib.suppress(Exception):
                event = await stream.find(mine, start, 0.0) or event
            if time.monotonic() >= deadline:
                found = event.data.get("draft") if event is not None else None
                return dict(found) if isinstance(found, dict) else None
            await asyncio.sleep(0.5)
    finally:
        await store.close()
        await stream.close()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "call",
        help="place a test call into the running stack (sipp) and print what happened",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None, help="hotline YAML config (default: hotline.yaml)")
    p.add_argument("--instance", default="demo", help="instance name (for the run directory)")
    p.add_argument("--run-dir", type=Path, default=None, help="where sipp's traces go")
    p.add_argument("--digits", default="", help="keys to press in order, e.g. 2 or 92")
    p.add_argument(
        "--key-after",
        type=float,
        default=None,
        help="seconds after answer for the first key (default: greeting length + 2 s)",
    )
    p.add_argument("--key-gap", type=float, default=1.5, help="seconds between keys")
    p.add_argument("--caller", default=None, help="caller number (default: random 138…)")
    p.add_argument("--caller-name", default="", help="caller ID name")
    p.add_argument(
        "--hold",
        type=float,
        default=None,
        help="seconds on the line after the keys / speech (default 10; 20 with --audio; 25"
        " without it when speech.mode asks callers to speak)",
    )
    p.add_argument("--audio", type=Path, default=None, help="a wav the caller speaks after keys")
    p.add_argument(
        "--audio-after",
        type=float,
        default=None,
        help="s after the last key to speak (default: the speak-demand prompt's length + 0.5 s)",
    )
    p.add_argument(
        "--draft-wait", type=float, default=30.0, help="s to wait for the draft after the call"
    )
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this many s")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    config_path = args.config or os.environ.get("HOTLINE_CONFIG", "hotline.yaml")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    caller = args.caller or f"138{random.randrange(10**8):08d}"
    run_root = (args.run_dir or REPO / "run").resolve() / args.instance / "calls"
    # named by time, never by the caller's number (第二十条)
    workdir = run_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    try:
        key_after = args.key_after if args.key_after is not None else first_key_after(config)
        steps = key_steps(args.digits, key_after, args.key_gap) if args.digits else []
        if args.audio is not None and not args.audio.is_file():
            raise SippError(f"no such audio file: {args.audio}")
        if args.audio is not None and config.speech.mode == "off":
            print("warning: speech.mode is off in the config: nobody listens after the menu",
                  file=sys.stderr)  # fmt: skip
        audio_after = args.audio_after
        if audio_after is None:
            audio_after = (prompt_seconds("speak-demand") or 6.0) + 0.5
        speech_wav = None
        if args.audio is not None:
            from speech.pcap import PcapError, with_trailing_silence

            try:  # a phone goes on sending (silent) audio after the last word
                speech_wav = with_trailing_silence(args.audio, workdir / "speech.wav")
            except PcapError as exc:
                raise SippError(str(exc)) from None
        digits, media, media_s = prepare_media(steps, workdir, speech_wav, audio_after)
        spec = CallerSpec.into(
            config,
            caller=caller,
            name=args.caller_name,
            digits=digits,
            hold_s=args.hold if args.hold is not None else default_hold(config, args.audio),
            media_pcap=media,
            media_s=media_s,
        )
        spec.validate()
        placed_at = time.time()
        facts = asyncio.run(place_call(config, spec, workdir, args.timeout))
    except SippError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (AmiError, OSError) as exc:
        print(
            f"error: cannot reach Asterisk's AMI at {config.ami.host}:{config.ami.port} "
            f"({exc}); is the stack up (hotline up)?",
            file=sys.stderr,
        )
        return 1
    if args.audio is not None and facts.get("linkedid"):
        since = placed_at - 5.0
        facts["draft"] = asyncio.run(
            fetch_draft(config, str(facts["linkedid"]), args.draft_wait, since)
        )
    print(json.dumps(facts, ensure_ascii=False, indent=2))
    sipp = facts["sipp"]
    return 0 if isinstance(sipp, dict) and sipp.get("ok") and facts.get("linkedid") else 1
