"""The real stack for call scenarios: Asterisk (chroot), FastAGI IVR, Redis, sipp phones.

One test instance per session (per xdist worker): ``itest``, hotline.yaml with every port
moved by 10 000 (SIP 15060, AMI 15038, AGI 14573, Redis 16390, agents 151xx, carrier
127.0.0.2:15060, emergency trunk 127.0.0.3:15060), written under tmp.  A sipp phone answers
for every agent and for the emergency trunk.  ``HOTLINE_ITEST_PORT_OFFSET`` /
``HOTLINE_ITEST_INSTANCE`` move it (and the other test stacks) elsewhere; worker ``gwN`` adds
N × 3000 to the offset and ``-gwN`` to the name (``instances.py``).

To keep the suite's wall time reasonable the test config gives the main menu a 3 s time-out
and 2 rounds (the tests read these numbers from the config, they do not assume them).
Asterisk's AGI debug log is switched on, so ``agi_commands(channel)`` lists every AGI
command Asterisk received for a channel, whether or not the AMI user may read ``agi`` events.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from instances import stack_instance

from cli.commands.call import first_key_after, place_call
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from testphones.sipp import (
    CallerSpec,
    PhoneSet,
    key_steps,
    missing_dtmf_samples,
    offset_config,
    prepare_media,
    start_phones,
)

REPO = Path(__file__).resolve().parents[2]
INSTANCE, OFFSET = stack_instance("calls")
MENU_TIMEOUT_S = 3
MENU_RETRIES = 2


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (Asterisk runs in a chroot, sipp sends raw RTP)"
    if shutil.which("sipp") is None:
        return "sipp is not installed (apt-get install sip-tester)"
    missing = missing_dtmf_samples()
    if missing:
        return f"sip-tester's RTP event samples are missing: {', '.join(missing)}"
    return None


@dataclass
class Hotline:
    """The running test instance and what tests do with it."""

    config: HotlineConfig
    config_path: Path
    stack: object  # runtime.stack.Stack
    phones: PhoneSet
    workdir: Path
    asterisk_log_start: int = 0
    """Where this session's part of Asterisk's log begins (the file outlives restarts, and
    channel names start again at 00000000 with every Asterisk)."""
    _calls: int = 0

    # ---- calls --------------------------------------------------------------------------
    def spec(
        self,
        digits: str | list[tuple[float, str]] = "",
        caller: str | None = None,
        name: str = "",
        hold_s: float = 4.0,
        key_after_s: float | None = None,
        key_gap_s: float = 1.5,
    ) -> CallerSpec:
        self._calls += 1
        caller = caller or f"1380000{os.getpid() % 1000:03d}{self._calls % 10}"
        after = key_after_s if key_after_s is not None else first_key_after(self.config)
        steps = key_steps(digits, after, key_gap_s) if digits else []
        plan, media, media_s = prepare_media(steps, self.workdir / "media" / caller)
        return CallerSpec.into(
            self.config,
            caller=caller,
            name=name,
            digits=plan,
            hold_s=hold_s,
            media_pcap=media,
            media_s=media_s,
        )

    async def place_async(self, spec: CallerSpec, timeout_s: float = 240.0) -> dict:
        # one folder per placement, named without the caller's number (第二十条); calls placed
        # together (run_all) must not share one: sipp's logs say which call was whose
        (self.workdir / "calls").mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{int(time.time())}-", dir=self.workdir / "calls"))
        return await place_call(self.config, spec, workdir, timeout_s)

    def place_call(
        self,
        digits: str | list[tuple[float, str]] = "",
        caller: str | None = None,
        name: str = "",
        hold_s: float = 4.0,
        key_after_s: float | None = None,
        key_gap_s: float = 1.5,
        timeout_s: float = 240.0,
    ) -> dict:
        """Place a call and return the same facts as ``hotline call`` (see call.py)."""
        spec = self.spec(digits, caller, name, hold_s, key_after_s, key_gap_s)
        return asyncio.run(self.place_async(spec, timeout_s))

    # ---- what Asterisk and the FastAGI server recorded ---------------------------------
    def agi_commands(self, channel: str) -> list[str]:
        """Every AGI command Asterisk received on ``channel`` (its AGI debug log)."""
        marker = f"<{channel}>AGI Rx << "
        with open(self.stack.asterisk_log, "rb") as fh:  # type: ignore[attr-defined]
            fh.seek(self.asterisk_log_start)
            text = fh.read().decode(errors="replace")
        return [line.split(marker, 1)[1] for line in text.splitlines() if marker in line]

    @property
    def fastagi_log(self) -> Path:
        return Path(self.stack.status()["fastagi"]["log"])  # type: ignore[attr-defined,index]

    def fastagi_log_since(self, offset: int) -> str:
        with open(self.fastagi_log, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    def fastagi_log_size(self) -> int:
        try:
            return self.fastagi_log.stat().st_size
        except OSError:
            return 0

    def fastagi_stats(self, timeout_s: float = 5.0) -> dict[str, int]:
        """The FastAGI server's session counters (SIGUSR1 makes it log them)."""
        pid = self.stack.status()["fastagi"]["pid"]  # type: ignore[attr-defined,index]
        assert pid, "the FastAGI server is not running"
        before = self.fastagi_log_size()
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.findall(r" stats (\{.*\})", self.fastagi_log_since(before))
            if found:
                return json.loads(found[-1])
            time.sleep(0.1)
        raise AssertionError("the FastAGI server did not log its stats after SIGUSR1")

    def agents_for(self, seat: str) -> set[str]:
        return {a.endpoint for a in self.config.agents if seat in a.seats}


@pytest.fixture(scope="session")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    from runtime.procs import StackError
    from runtime.stack import Stack

    tmp = tmp_path_factory.mktemp("hotline-itest")
    base = safe_yaml.load_file(REPO / "hotline.yaml")
    data = offset_config(base, OFFSET, tmp)
    data["menus"]["main"]["timeout_s"] = MENU_TIMEOUT_S
    data["menus"]["main"]["retries"] = MENU_RETRIES
    data.setdefault("speech", {})["mode"] = "off"  # keypad scenarios: nobody is asked to speak
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)

    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones: PhoneSet | None = None
    try:
        try:
            stack.up(require_fastagi=True)
        except StackError as exc:
            pytest.fail(f"the test stack did not come up: {exc}", pytrace=False)
        log_start = stack.asterisk_log.stat().st_size
        stack.cli("agi set debug on")
        phones = start_phones(config, tmp / "phones")
        yield Hotline(config, config_path, stack, phones, tmp, log_start)
    finally:
        if phones is not None:
            phones.stop()
        stack.down()


from rules_helpers import rules  # noqa: E402, F401  (issue 4: the caller-rules stack)
