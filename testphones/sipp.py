"""sipp as the hotline's test telephone network: callers, agents' phones, the emergency trunk.

Three scenarios live in ``testphones/sipp_scenarios/``:

* ``caller.xml`` — a 12345 caller arriving from the carrier address (127.0.0.2): INVITE with
  a caller number and name, RFC 4733 keys at given times (sip-tester's ``dtmf_2833_*.pcap``),
  optionally speech (a pcap made by :mod:`speech.pcap`), then holds and hangs up (or takes the
  far end's BYE).
* ``uas.xml`` — a phone that rings briefly, answers with SDP and holds until BYE; one process
  answers any number of calls and logs each INVITE (Request-URI, From, P-Asserted-Identity) so
  tests can tell which phone got which call.  Used for agents and for the emergency trunk.

This module builds the command lines, runs sipp with bounded time-outs, and parses what sipp
leaves behind: exit code, ``-trace_stat`` CSV, ``-trace_screen`` and the ``<log>`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hotline.config import HotlineConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "sipp_scenarios"
CALLER_XML = SCENARIO_DIR / "caller.xml"
UAS_XML = SCENARIO_DIR / "uas.xml"
DTMF_DIR = Path("/usr/share/sip-tester")
DTMF_FILES = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}
CARRIER_IP = "127.0.0.2"
MEDIA_MARKER = "<!--MEDIA-->"

EXIT_CODES = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command, calls may have been processed",
    99: "normal exit without calls processed",
    253: "fatal error binding a socket",
    254: "fatal error binding a socket",
    255: "fatal error",
}
"""sipp's documented exit codes (-1/-2 appear as 255/254)."""


class SippError(RuntimeError):
    """sipp is missing, an argument cannot be expressed in SIP, or sipp could not start."""


def sipp_binary() -> str:
    """Path of the sipp executable; SippError when sip-tester is not installed."""
    path = shutil.which("sipp")
    if path is None:
        raise SippError("sipp is not installed: apt-get install sip-tester")
    return path


def missing_dtmf_samples(dtmf_dir: Path = DTMF_DIR) -> list[str]:
    """The sip-tester RTP event samples that are not where the caller scenario plays them."""
    return sorted(name for name in DTMF_FILES.values() if not (dtmf_dir / name).is_file())


# ---- arguments --------------------------------------------------------------------------
def key_steps(
    digits: str | Sequence[tuple[float, str]], first_after_s: float = 3.0, gap_s: float = 1.0
) -> list[tuple[float, str]]:
    """Keys as ``(seconds after the previous step, key)``.

    ``digits`` is either a string of keys ("92": the first ``first_after_s`` after answer, the
    others ``gap_s`` apart) or explicit pairs."""
    if isinstance(digits, str):
        steps = [(first_after_s if i == 0 else gap_s, d) for i, d in enumerate(digits)]
    else:
        steps = [(float(w), k) for w, k in digits]
    for i, (wait_s, key) in enumerate(steps):
        if key not in DTMF_FILES:
            raise SippError(f"cannot press {key!r}: keys are 0-9, * and #")
        if not 0 <= wait_s <= 600:
            raise SippError(f"a key wait of {wait_s} s is outside 0..600 s")
        if i and wait_s < 0.2:
            raise SippError("keys must be at least 0.2 s apart (a key event lasts 0.1 s)")
    return steps


def digit_plan(
    digits: str | Sequence[tuple[float, str]], first_after_s: float = 3.0, gap_s: float = 1.0
) -> str:
    """The caller scenario's key plan ``"<wait_ms>:<digit>;..."`` (see :func:`key_steps`)."""
    steps = key_steps(digits, first_after_s, gap_s)
    return ";".join(f"{round(w * 1000)}:{k}" for w, k in steps)


def prepare_media(
    steps: Sequence[tuple[float, str]],
    workdir: Path,
    speech_wav: Path | None = None,
    speech_after_s: float = 1.0,
) -> tuple[str, Path | None, float]:
    """How the caller sends its keys (and speech): ``(digits, media_pcap, media_seconds)``.

    A single key (and no speech) uses sip-tester's own RFC 4733 sample through the scenario's
    key plan.  Several keys or speech become one generated RTP stream
    (:func:`speech.pcap.call_media_pcap`), because the samples' fixed sequence numbers make
    Asterisk drop a key numbered lower than the one before."""
    steps = list(steps)
    if speech_wav is None and len(steps) <= 1:
        return (";".join(f"{round(w * 1000)}:{k}" for w, k in steps), None, 0.0)
    from speech.pcap import PcapError, call_media_pcap

    keys, t = [], 0.0
    for wait_s, key in steps:
        t += wait_s
        keys.append((t, key))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        info = call_media_pcap(
            workdir / "media.pcap", keys, speech_wav, speech_at_s=t + speech_after_s
        )
    except PcapError as exc:
        raise SippError(str(exc)) from None
    return "", info.path, info.duration_s


_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$|^(anonymous|unknown)$")


def check_number(number: str) -> str:
    """A caller number for the From/P-Asserted-Identity user part (digits, optional +)."""
    if not _NUMBER_RE.match(number):
        raise SippError(f"caller number {number!r}: use digits (optionally +), or 'anonymous'")
    return number


def sip_display_name(name: str) -> str:
    """``name`` escaped for a SIP quoted-string (RFC 3261 quoted-pair for ``\\`` and ``"``).

    CR, LF and NUL cannot travel in a SIP header at all (Asterisk's PJSIP drops such an
    INVITE without an answer), so they are refused here rather than silently changed."""
    bad = sorted({repr(c) for c in name if c in "\r\n\0"})
    if bad:
        raise SippError(
            f"a caller name cannot contain {', '.join(bad)}: SIP cannot carry it "
            "(use e.g. U+2028 to test line-separator handling)"
        )
    if len(name.encode()) > 200:
        raise SippError("caller name longer than 200 bytes")
    return name.replace("\\", "\\\\").replace('"', '\\"')


def free_udp_port(host: str, pair: bool = False) -> int:
    """A UDP port free on ``host`` (and ``port + 2`` too if ``pair``: sipp's media ports)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port + 2 <= 65535:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((host, port + 2))
                return port
            except OSError:
                continue
    raise SippError(f"no free UDP port on {host}")


def control_args(host: str) -> list[str]:
    """sipp's remote-control socket on ``host`` (its own address, loopback) at a free port.

    Without these sipp binds that socket to 0.0.0.0:8888 (the next free of 8888–8947), open
    to the network and shared by every sipp on the machine, so parallel test instances fought
    over it; ``-ci`` (sipp 3.6.1) binds it to one address, ``-cp`` picks the port (with
    ``-cp`` sipp does not try the next one: the port must be free, as found here)."""
    return ["-ci", host, "-cp", str(free_udp_port(host))]


# ---- results ----------------------------------------------------------------------------
@dataclass
class SippResult:
    """What one sipp run did."""

    exit_code: int | None
    """None when sipp had to be killed after its time limit."""
    meaning: str
    calls_created: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    failed_reasons: dict[str, int] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    workdir: str = ""
    timed_out: bool = False
    response_time_ms: float | None = None
    """Average INVITE → 200 OK time over the run (sipp's ResponseTime1)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.successful > 0

    @property
    def ended_by(self) -> list[str]:
        """Who ended each call, from the caller scenario's log: ``caller``, ``far_end`` or
        ``both`` (the two BYEs crossed)."""
        return [m.group(1) for line in self.logs if (m := re.match(r"hangup by=(\w+)", line))]

    def as_dict(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code,
            "meaning": self.meaning,
            "ok": self.ok,
            "calls_created": self.calls_created,
            "successful": self.successful,
            "failed": self.failed,
            "failed_reasons": self.failed_reasons,
            "retransmissions": self.retransmissions,
            "invite_to_200_ms": self.response_time_ms,
            "duration_s": round(self.duration_s, 3),
            "ended_by": self.ended_by,
            "logs": self.logs,
            "errors": self.errors[-5:],
            "timed_out": self.timed_out,
            "workdir": self.workdir,
        }


def parse_stat_csv(path: Path) -> dict[str, str]:
    """The last row of a sipp ``-trace_stat`` CSV as ``{column: value}`` (empty if none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return {k: v for k, v in zip(header, last, strict=False) if k}


def _int(stats: dict[str, str], key: str) -> int:
    try:
        return int(float(stats.get(key, "0") or 0))
    except ValueError:
        return 0


def sipp_duration_ms(value: str) -> float | None:
    """sipp's ``HH:MM:SS:microseconds`` as milliseconds (None when absent or zero)."""
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d{6})", value.strip())
    if not m:
        return None
    h, mi, sec, us = (int(g) for g in m.groups())
    ms = ((h * 60 + mi) * 60 + sec) * 1000 + us / 1000
    return round(ms, 3) if ms else None


def stats_counts(stats: dict[str, str]) -> dict[str, object]:
    """Cumulative counters from a stat row: created, successful, failed (+ reasons)."""
    reasons = {
        k.removeprefix("Failed").removesuffix("(C)"): _int(stats, k)
        for k in stats
        if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
    }
    return {
        "created": _int(stats, "TotalCallCreated"),
        "successful": _int(stats, "SuccessfulCall(C)"),
        "failed": _int(stats, "FailedCall(C)"),
        "retransmissions": _int(stats, "Retransmissions(C)"),
        "failed_reasons": {k: v for k, v in reasons.items() if v},
        "current": _int(stats, "CurrentCall"),
        "response_time_ms": sipp_duration_ms(stats.get("ResponseTime1(C)", "")),
    }


def parse_screen(path: Path) -> dict[str, int]:
    """Successful/failed call counts from a ``-trace_screen`` dump (fallback for the CSV)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    out = {}
    for key, pattern in (
        ("successful", r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)"),
        ("failed", r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)"),
    ):
        found = re.findall(pattern, text)
        if found:
            out[key] = int(found[-1])
    return out


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _errors(path: Path) -> list[str]:
    """sipp's error log without its routine receive-timeout lines (our wait loops)."""
    text = "\n".join(_read_lines(path))
    parts = re.split(r"(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t)", text)
    return [
        p.strip()
        for p in parts
        if p.strip()
        and "receive timeout on message" not in p
        and not p.startswith("The following events occurred")
    ]


# ---- a caller -----------------------------------------------------------------------------
@dataclass
class CallerSpec:
    """One test call into the hotline."""

    target_host: str
    target_port: int
    dialed: str = "12345"
    caller: str = "13800000001"
    name: str = ""
    digits: str = ""
    """A :func:`digit_plan` string ("" presses nothing)."""
    hold_s: float = 10.0
    media_pcap: Path | None = None
    """A pcap played right after the answer (keys and/or speech, see :func:`prepare_media`)."""
    media_s: float = 0.0
    """Its length: the hold starts when it ends."""
    local_ip: str = CARRIER_IP
    local_port: int | None = None
    """The phone's own SIP port (an agent's phone, identified by address and port); a free
    one when None."""
    calls: int = 1
    rate: float = 1.0
    limit: int | None = None
    trace_errors: bool = True
    """sipp's error log (it also records every wait-loop tick: off for load runs)."""
    callers: tuple[str, ...] = ()
    """One caller number per call (``calls`` of them) instead of ``caller`` for every call:
    a load run of many callers, not one caller ringing ``calls`` times (whom the 第二十九条
    throttle would warn from the 6th call and then suspend)."""

    @classmethod
    def into(cls, config: HotlineConfig, **fields: object) -> CallerSpec:
        """A call to ``config``'s hotline number at its SIP address."""
        return cls(
            target_host=config.sip.host,
            target_port=config.sip.port,
            dialed=config.hotline.number,
            **fields,  # type: ignore[arg-type]
        )

    def validate(self) -> None:
        check_number(self.caller)
        sip_display_name(self.name)
        if not re.fullmatch(r"[0-9*#]{1,16}", self.dialed):
            raise SippError(f"dialed number {self.dialed!r} must be digits (or * #)")
        if self.digits:
            for step in self.digits.split(";"):
                if not re.fullmatch(r"[0-9]+:[0-9*#]", step):
                    raise SippError(f"bad key step {step!r} in {self.digits!r}")
        if not 0 < self.hold_s <= 3600:
            raise SippError("hold must be between 0 and 3600 s")
        if self.media_pcap is not None and not Path(self.media_pcap).is_file():
            raise SippError(f"media pcap {self.media_pcap} does not exist")
        if self.callers:
            for number in self.callers:
                check_number(number)
            if len(set(self.callers)) < self.calls:
                raise SippError(f"{self.calls} calls need {self.calls} different caller numbers")


def caller_scenario(workdir: Path, media_pcap: Path | None, numbered: bool = False) -> Path:
    """The caller scenario to run: the committed one, or a copy that plays ``media_pcap``
    and/or (``numbered``) takes each call's number from the ``-inf`` file (``[field0]``)."""
    if media_pcap is None and not numbered:
        return CALLER_XML
    text = CALLER_XML.read_text()
    if media_pcap is not None:
        if MEDIA_MARKER not in text:
            raise SippError(f"{CALLER_XML} lost its {MEDIA_MARKER} marker")
        path = Path(media_pcap).resolve()
        if any(c in str(path) for c in '"<>&'):
            raise SippError(f"media pcap path {path} cannot be put in a scenario")
        play = (
            f'<nop><action><exec play_pcap_audio="{path}" />'
            f'<log message="media pcap={path.name} call_id=[call_id]" /></action></nop>'
        )
        text = text.replace(MEDIA_MARKER, play)
    if numbered:
        text = text.replace("[$caller]", "[field0]").replace(
            '<Global variables="dialed,caller,', '<Global variables="dialed,'
        )
    out = workdir / "caller_run.xml"
    out.write_text(text)
    return out


def caller_argv(spec: CallerSpec, workdir: Path, timeout_s: float) -> list[str]:
    """sipp's command line for ``spec``; trace files go into ``workdir``."""
    spec.validate()
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = caller_scenario(workdir, spec.media_pcap, numbered=bool(spec.callers))
    argv = [
        sipp_binary(),
        f"{spec.target_host}:{spec.target_port}",
        "-sf", str(scenario),
        "-i", spec.local_ip,
        "-p", str(spec.local_port or free_udp_port(spec.local_ip)),
        "-mi", spec.local_ip,
        "-mp", str(free_udp_port(spec.local_ip, pair=True)),
        *control_args(spec.local_ip),
        "-m", str(spec.calls),
        "-r", f"{spec.rate:g}",
        "-set", "dialed", spec.dialed,
        "-set", "name", sip_display_name(spec.name),
        "-set", "digits", spec.digits,
        "-set", "hold_ms", str(round((spec.media_s + spec.hold_s) * 1000)),
        "-aa",
        "-nostdin",
        "-timeout", f"{max(1, round(timeout_s))}s",
        "-timeout_error",
        "-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1",
        "-trace_screen", "-screen_file", str(workdir / "screen.log"),
        "-trace_logs", "-log_file", str(workdir / "calls.log"),
    ]  # fmt: skip
    if spec.callers:  # one number a call, in order
        numbers = workdir / "callers.csv"
        numbers.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in spec.callers))
        argv += ["-inf", str(numbers)]
    else:
        argv += ["-set", "caller", spec.caller]
    if spec.trace_errors:
        argv += ["-trace_err", "-error_file", str(workdir / "errors.log")]
    if spec.limit:
        argv += ["-l", str(spec.limit)]
    if spec.calls <= 5:
        argv += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
    return argv


def _result(
    exit_code: int | None, workdir: Path, started: float, timed_out: bool = False
) -> SippResult:
    stats = stats_counts(parse_stat_csv(workdir / "stat.csv"))
    screen = parse_screen(workdir / "screen.log")
    logs = [
        line
        for line in _read_lines(workdir / "calls.log")
        if line and not line.startswith(("In pcap", "max pkt", "base port"))
    ]
    meaning = "killed after its time limit" if exit_code is None else EXIT_CODES.get(exit_code, "?")
    return SippResult(
        exit_code=exit_code,
        meaning=meaning,
        calls_created=int(stats["created"]),  # type: ignore[call-overload]
        successful=max(int(stats["successful"]), screen.get("successful", 0)),  # type: ignore[call-overload]
        failed=max(int(stats["failed"]), screen.get("failed", 0)),  # type: ignore[call-overload]
        retransmissions=int(stats["retransmissions"]),  # type: ignore[call-overload]
        failed_reasons=dict(stats["failed_reasons"]),  # type: ignore[call-overload]
        logs=logs,
        errors=_errors(workdir / "errors.log"),
        duration_s=time.monotonic() - started,
        workdir=str(workdir),
        timed_out=timed_out,
        response_time_ms=stats["response_time_ms"],  # type: ignore[arg-type]
    )


def run_caller(spec: CallerSpec, workdir: Path, timeout_s: float = 60.0) -> SippResult:
    """Place the call(s) and wait (at most ``timeout_s`` plus a grace period)."""
    argv = caller_argv(spec, workdir, timeout_s)
    started = time.monotonic()
    with open(workdir / "sipp.out", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            code: int | None = proc.wait(timeout_s + 10)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code, timed_out = None, True
    return _result(code, workdir, started, timed_out)


async def run_caller_async(spec: CallerSpec, workdir: Path, timeout_s: float = 60.0) -> SippResult:
    """:func:`run_caller` for asyncio code (AMI is followed meanwhile)."""
    argv = caller_argv(spec, workdir, timeout_s)
    started = time.monotonic()
    with open(workdir / "sipp.out", "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
        try:
            code: int | None = await asyncio.wait_for(proc.wait(), timeout_s + 10)
            timed_out = False
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            code, timed_out = None, True
    return _result(code, workdir, started, timed_out)


# ---- phones (UAS) -------------------------------------------------------------------------
@dataclass(frozen=True)
class PhoneEvent:
    """One line of a phone's log: ``invite`` (with the request's identity), ``answered``,
    ``bye`` or ``cancelled``."""

    kind: str
    role: str
    call_id: str
    request_uri: str = ""
    from_header: str = ""
    pai_header: str = ""
    to_header: str = ""

    @property
    def uri_user(self) -> str:
        """The Request-URI user (``119`` for ``sip:119@127.0.0.3:5060``)."""
        return _uri_user(self.request_uri)

    @property
    def from_user(self) -> str:
        return _uri_user(self.from_header)

    @property
    def pai_user(self) -> str:
        return _uri_user(self.pai_header)


def _uri_user(text: str) -> str:
    m = re.search(r"sips?:([^@;>\s]+)@", text)
    return m.group(1) if m else ""


EVENT_KINDS = ("invite", "answered", "bye", "cancelled")


def parse_phone_log(text: str) -> list[PhoneEvent]:
    """Parse a ``uas.xml`` log.  A caller name may hold line separators, so a line that does
    not start with a known event continues the previous one."""
    records: list[str] = []
    for line in text.split("\n"):
        if line.split("\t", 1)[0] in EVENT_KINDS:
            records.append(line)
        elif records and line:
            records[-1] += "\n" + line
    events = []
    for rec in records:
        parts = rec.split("\t")
        kind, role, call_id = [*parts, "", "", ""][:3]
        if kind == "invite":
            ruri, frm, pai, to = [*parts[3:], "", "", "", ""][:4]
            events.append(PhoneEvent(kind, role, call_id, ruri, frm, pai, to))
        else:
            events.append(PhoneEvent(kind, role, call_id))
    return events


@dataclass
class Phone:
    """A running ``uas.xml`` sipp process (an agent's phone or the emergency trunk)."""

    role: str
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.role}.log"

    def events(self) -> list[PhoneEvent]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return parse_phone_log(text)

    def invites(self) -> list[PhoneEvent]:
        return [e for e in self.events() if e.kind == "invite"]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def media_at(scenario: Path, workdir: Path) -> Path:
    """A copy of ``scenario`` whose SDP offers the media port ``-set rtp_port`` instead of
    sipp's own: the phone's RTP is then a Python :class:`testphones.rtp.RtpPhone`."""
    text = scenario.read_text()
    if "m=audio [media_port]" not in text or '<Global variables="' not in text:
        raise SippError(f"{scenario} has no SDP media port or Global variables to replace")
    text = text.replace("m=audio [media_port]", "m=audio [$rtp_port]")
    text = text.replace('<Global variables="', '<Global variables="rtp_port,', 1)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{scenario.stem}_rtp_port.xml"
    out.write_text(text)
    return out


def start_phone(
    role: str,
    host: str,
    port: int,
    workdir: Path,
    ring_s: float = 0.3,
    wait_s: float = 5.0,
    rtp_port: int | None = None,
    scenario: Path | None = None,
) -> Phone:
    """Start a phone that answers on ``host:port`` (``scenario``: a variant of ``uas.xml``,
    e.g. :func:`speaking_phone_scenario`); SippError if it does not bind.  With ``rtp_port``
    its SDP names that port (a Python RTP phone's) instead of sipp's."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", role):
        raise SippError(f"phone role {role!r}: letters, digits, '_', '-', '.' only")
    workdir.mkdir(parents=True, exist_ok=True)
    phone = Phone(role, host, port, workdir)
    scenario = scenario or UAS_XML
    if rtp_port is not None:
        scenario = media_at(scenario, workdir)
    argv = [
        sipp_binary(),
        "-sf", str(scenario),
        "-i", host,
        "-p", str(port),
        "-mi", host,
        "-mp", str(free_udp_port(host, pair=True)),
        *control_args(host),
        "-set", "role", role,
        "-set", "ring_ms", str(round(ring_s * 1000)),
        "-aa",
        "-nostdin",
        "-trace_logs", "-log_file", str(phone.log_path),
        "-trace_err", "-error_file", str(workdir / f"{role}.errors.log"),
        "-trace_msg", "-message_file", str(workdir / f"{role}.messages.log"),
    ]  # fmt: skip
    if rtp_port is not None:
        argv += ["-set", "rtp_port", str(rtp_port)]
    out = open(workdir / f"{role}.out", "wb")  # noqa: SIM115 - lives as long as the process
    phone.proc = subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
    )
    out.close()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if phone.proc.poll() is not None:
            tail = (workdir / f"{role}.out").read_bytes()[-2000:].decode(errors="replace")
            raise SippError(f"phone {role} on {host}:{port} exited: {tail.strip()}")
        if _udp_bound(host, port, phone.proc.pid):
            return phone
        time.sleep(0.05)
    stop_phone(phone)
    raise SippError(f"phone {role} did not bind {host}:{port} within {wait_s} s")


def speaking_phone_scenario(workdir: Path, media_pcap: Path) -> Path:
    """``uas.xml`` for a phone that speaks: once a call is answered it sends the RTP of
    ``media_pcap`` (an agent greeting the caller), then holds until the BYE."""
    if not re.fullmatch(r"[A-Za-z0-9_./-]{1,512}", str(media_pcap)):
        raise SippError(f"media path {media_pcap} has characters sipp's XML would mangle")
    text = UAS_XML.read_text(encoding="utf-8")
    head, sep, tail = text.partition('<label id="talk" />')
    if not sep or '<log message="answered' not in head:
        raise SippError("uas.xml changed: no place to start the agent's speech")
    play = f'<nop><action><exec play_pcap_audio="{media_pcap}" /></action></nop>\n  '
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "uas-speaking.xml"
    out.write_text(head + play + sep + tail, encoding="utf-8")
    return out


def _udp_bound(host: str, port: int, pid: int | None = None) -> bool:
    """Whether ``host:port`` is bound for UDP (by process ``pid`` when given: a port that
    someone else holds must not pass for our phone's)."""
    import ipaddress

    want = f"{int(ipaddress.IPv4Address(host)):08X}"
    want = "".join(reversed([want[i : i + 2] for i in range(0, 8, 2)]))  # little-endian /proc
    inodes = set()
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        addr, _, hexport = parts[1].partition(":")
        if int(hexport, 16) == port and addr in (want, "00000000"):
            inodes.add(parts[9])
    if pid is None:
        return bool(inodes)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in {f"socket:[{i}]" for i in inodes}:
                return True
    return False


def stop_phone(phone: Phone, timeout_s: float = 5.0) -> None:
    """Stop the phone's sipp (SIGTERM, then SIGKILL)."""
    proc = phone.proc
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class PhoneSet:
    """Every agent's phone of a config plus the emergency trunk."""

    phones: dict[str, Phone] = field(default_factory=dict)

    @property
    def emergency(self) -> Phone:
        return self.phones["emergency"]

    def agent(self, agent_id: str) -> Phone:
        return self.phones[f"agent{agent_id}"]

    def invites(self) -> list[PhoneEvent]:
        return [e for p in self.phones.values() for e in p.invites()]

    def stop(self) -> None:
        for phone in self.phones.values():
            stop_phone(phone)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.phones.values())


def start_phones(
    config: HotlineConfig, workdir: Path, ring_s: float = 0.3, emergency: bool = True
) -> PhoneSet:
    """Start a phone for every agent of ``config`` (and the emergency trunk); on failure the
    ones already started are stopped again."""
    phones = PhoneSet()
    targets: Iterable[tuple[str, str, int]] = [(a.endpoint, a.host, a.port) for a in config.agents]
    if emergency:
        trunk = config.trunks.emergency
        targets = [*targets, ("emergency", trunk.host, trunk.port)]
    try:
        for role, host, port in targets:
            phones.phones[role] = start_phone(role, host, port, workdir, ring_s)
    except Exception:
        phones.stop()
        raise
    return phones


# ---- a test network beside the demo one ---------------------------------------------------
TEST_RTP_PORTS = (40000, 44998)
"""Test stacks' RTP range: with the default 10000–20000 an Asterisk of one parallel test stack
took a port another stack's agent phone needed (errno 98, the phone never started)."""
TEST_RTP_TIMEOUT_S = 300
"""Test stacks' ``sip.rtp_timeout_s``: a sipp caller sends RTP only while it presses keys or
speaks (a real phone never stops), so with the default 30 s Asterisk hung up a caller holding
on after its words just as the caller hung up itself (CI: the two BYEs raced and sipp aborted
the call).  The dead-leg time-out itself is tested with small values in tests/security."""


def offset_config(base: dict[str, object], offset: int, run_dir: Path | None = None) -> dict:
    """A copy of a parsed hotline YAML whose every listening port is moved by ``offset``
    (SIP 5060 → 15060, AMI, AGI, Redis, agents' phones, both trunks), so a test instance runs
    beside the demo one, with Asterisk's RTP ports and time-out fit for sipp phones.  Files
    under ``run/`` move to ``run_dir`` when given."""
    import copy

    data: dict = copy.deepcopy(base)  # type: ignore[arg-type]

    def move(section: dict, default: int) -> None:
        port = int(section.get("port", default)) + offset
        if not 1 <= port <= 65535:
            raise SippError(f"port {port} out of range after offset {offset}")
        section["port"] = port

    for key, default in (("sip", 5060), ("ami", 5038), ("agi", 4573), ("redis", 6390)):
        move(data.setdefault(key, {}), default)
    for trunk in data.get("trunks", {}).values():
        move(trunk, 5060)
    for agent in data.get("agents", []):
        move(agent, 5100)
    for supervisor in data.get("supervisors", []):
        move(supervisor, 5120)
    # Asterisk's media ports: clear of every stack's fixed ports (offsets up to ~30 000 here)
    data.setdefault("sip", {})["rtp_ports"] = list(TEST_RTP_PORTS)
    data["sip"]["rtp_timeout_s"] = TEST_RTP_TIMEOUT_S
    if run_dir is not None and isinstance(data.get("tickets"), dict):
        data["tickets"]["path"] = str(run_dir / "tickets.sqlite3")
        data["tickets"]["key_file"] = str(run_dir / "secrets" / "pii.key")
    if run_dir is not None:
        data.setdefault("console", {})["users_db"] = str(run_dir / "console-access.sqlite3")
    if run_dir is not None and isinstance(data.get("calls"), dict):
        data["calls"]["path"] = str(run_dir / "calls.sqlite3")
    if run_dir is not None and isinstance(data.get("recording"), dict):
        data["recording"].update(
            store_dir=str(run_dir / "recordings"),
            index=str(run_dir / "recordings.sqlite3"),
            key_file=str(run_dir / "secrets" / "recording.key"),
            transcribe=False,  # a Whisper per test stack is too much for CI: the QA test asks
        )
    if run_dir is not None and isinstance(data.get("kb"), dict):
        data["kb"]["path"] = str(run_dir / "kb.sqlite3")
        data["kb"]["spoken_dir"] = str(run_dir / "kb-sounds")
    if run_dir is not None:
        notices = data.setdefault("notices", {})
        notices["path"] = str(run_dir / "notices.sqlite3")
        notices["sounds_dir"] = str(run_dir / "custom-sounds")
    return data
