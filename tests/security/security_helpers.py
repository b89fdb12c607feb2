"""The stack the security scenarios attack (issue 8): instance ``<itest>-sec``.

hotline.yaml moved to the ``security`` slot of tests/integration/instances.py (so it runs
beside the integration stacks, on each xdist worker its own), with the dead-leg RTP time-out at
``RTP_TIMEOUT_S`` (small, so a real vanished caller is seen hung up within a test), a 3 s main
menu, and no phone for the
教育 seat's only agent (``SILENT_AGENT``): a caller choosing that seat waits in its queue.

Directories: ``run/`` (the stack's run dir), ``data/`` (ticket store, PII key), ``phones/`` and
``calls/`` (sipp: the test network, not the stack).  The ``sec`` fixture (conftest.py) starts
it once per session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cli.commands.call import first_key_after, place_call
from hotline.ami import AmiClient
from hotline.config import HotlineConfig
from speech.pcap import call_media_pcap
from testphones.sipp import (
    CallerSpec,
    PhoneSet,
    free_udp_port,
    missing_dtmf_samples,
)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
from instances import stack_instance  # noqa: E402  (the integration suite's port slots)

INSTANCE, OFFSET = stack_instance("security")
RTP_TIMEOUT_S = 8
SILENT_SEAT, SILENT_KEY, SILENT_AGENT = "jiaoyu", "8", "1007"


def why_not_runnable() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return "security scenarios need root (Asterisk runs in a chroot, sipp sends raw RTP)"
    if shutil.which("sipp") is None or shutil.which("redis-server") is None:
        return "sipp and redis-server are needed"
    if missing_dtmf_samples():
        return "sip-tester's RTP event samples are missing"
    return None


@dataclass
class SecStack:
    """The running ``-sec`` instance."""

    config: HotlineConfig
    stack: object  # runtime.Stack
    phones: PhoneSet
    tmp: Path
    calls: int = 0
    numbers: list[str] = field(default_factory=list)

    def number(self) -> str:
        """A fresh caller number, remembered so tests can look for it in files."""
        self.calls += 1
        n = f"1390{os.getpid() % 10000:04d}{self.calls % 1000:03d}"
        self.numbers.append(n)
        return n

    def place(self, digits: str = "", caller: str | None = None, hold_s: float = 4.0) -> dict:
        """A sipp caller (testphones caller.xml) with AMI followed: it sends RTP (silence,
        the keys) from the answer to its last key, then none (``hold_s`` more, or until the
        hotline hangs up).  ``hotline call``'s facts plus ``events``: every AMI event of the
        call, each with ``t`` (monotonic)."""
        caller = caller or self.number()
        self.calls += 1
        work = self.tmp / "calls" / f"{int(time.time() * 1000)}-{self.calls}"
        work.mkdir(parents=True, exist_ok=True)
        media, media_s = None, 0.0
        if digits:
            at = first_key_after(self.config)
            keys = [(at + 1.5 * i, k) for i, k in enumerate(digits)]
            info = call_media_pcap(work / "media.pcap", keys)
            media, media_s = info.path, info.duration_s
        spec = CallerSpec.into(
            self.config, caller=caller, hold_s=hold_s, media_pcap=media, media_s=media_s
        )
        return asyncio.run(self._watching(place_call(self.config, spec, work, 240.0)))

    def hostile(self, user: str, name: str, key_after_s: float, hold_s: float) -> dict:
        """tests/security/hostile_caller.xml with ``user``/``name`` put in the INVITE as they
        are, pressing 2 ``key_after_s`` after the answer (RTP all along); returns sipp's exit
        code, its SIP trace and every AMI message seen meanwhile (``raw``: as Asterisk sent
        them)."""
        self.calls += 1
        work = self.tmp / "calls" / f"hostile-{self.calls}"
        work.mkdir(parents=True, exist_ok=True)
        media = call_media_pcap(work / "media.pcap", [(key_after_s, "2")], tail_s=hold_s + 2)
        xml = (HERE / "hostile_caller.xml").read_text()
        scenario = work / "hostile.xml"
        call_ms = str(round((key_after_s + hold_s) * 1000))
        scenario.write_text(xml.replace("MEDIA_PCAP", str(media.path)).replace("CALL_MS", call_ms))
        c = self.config
        argv = [
            *("sipp", f"{c.sip.host}:{c.sip.port}", "-sf", str(scenario)),
            *("-i", c.trunks.carrier.host, "-p", str(free_udp_port(c.trunks.carrier.host))),
            *("-mi", c.trunks.carrier.host),
            *("-mp", str(free_udp_port(c.trunks.carrier.host, pair=True))),
            *("-m", "1", "-set", "dialed", c.hotline.number, "-set", "user", user),
            *("-set", "name", name, "-nostdin", "-timeout", f"{round(key_after_s + hold_s + 12)}s"),
            *("-trace_msg", "-message_file", str(work / "sip.log")),
        ]
        return asyncio.run(self._raw_ami(argv, work))

    async def _raw_ami(self, argv: list[str], work: Path) -> dict:
        a = self.config.ami
        reader, writer = await asyncio.open_connection(a.host, a.port)
        writer.write(
            f"Action: Login\r\nUsername: {a.username}\r\nSecret: {a.secret}\r\n\r\n".encode()
        )
        raw = bytearray()

        async def read() -> None:
            while chunk := await reader.read(65536):
                raw.extend(chunk)

        task = asyncio.create_task(read())
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        code = await proc.wait()
        await asyncio.sleep(2.0)  # the hang-up events
        task.cancel()
        writer.close()
        text = bytes(raw).decode("utf-8", errors="replace")
        sip = (work / "sip.log").read_text(errors="replace") if (work / "sip.log").exists() else ""
        return {"exit_code": code, "raw": text, "sip": sip}

    async def _watching(self, call: object) -> dict:
        a = self.config.ami
        client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        queue = client.subscribe()
        seen: list[dict] = []

        async def collect() -> None:
            while True:
                e = await queue.get()
                seen.append({**e, "t": time.monotonic()})

        task = asyncio.create_task(collect())
        try:
            facts = await call  # type: ignore[misc]
        finally:
            task.cancel()
            await client.close()
        linkedid = facts["linkedid"]
        facts["events"] = [e for e in seen if linkedid and e.get("Linkedid") == linkedid]
        return facts

    def channels(self) -> int:
        """Channels up in this instance's Asterisk."""
        out = self.stack.cli("core show channels concise")  # type: ignore[attr-defined]
        return sum(1 for line in out.splitlines() if line.count("!") >= 5)
