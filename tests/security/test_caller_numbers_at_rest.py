"""Finding 4 (issue 8, 第二十条): after real calls, no file the stack wrote holds a caller's
number in clear, and no file or folder is named after it.

Searched: the instance's run directory (logs, PID files, the config copy, Redis's AOF, the
folders ``hotline call`` makes), the ticket store and key directory, and the instance's
directories inside the Asterisk rootfs (etc, log, spool, lib, run, cache).  Not searched:
the SIP traces sipp writes as the test carrier and the agents' test phones (the caller's and
the agent's own side of the call); under ``calls/`` only the names are checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .security_helpers import INSTANCE, REPO, SecStack

pytestmark = pytest.mark.integration


def stack_files(sec: SecStack) -> list[Path]:
    rootfs = sec.stack.rootfs  # type: ignore[attr-defined]
    roots = [sec.tmp / "run", sec.tmp / "data"]
    roots += [rootfs / "etc" / f"asterisk-{INSTANCE}"]
    for sub in ("log", "spool", "lib", "run", "cache"):
        roots.append(rootfs / "var" / sub / f"asterisk-{INSTANCE}")
    return [p for root in roots if root.exists() for p in [root, *root.rglob("*")]]


def test_caller_numbers_are_in_no_file_and_no_file_name(sec: SecStack) -> None:
    reached_agent = sec.number()
    call = sec.place(digits="2", caller=reached_agent, hold_s=3)
    assert call["agent"], call["sipp"]
    via_cli = sec.number()
    out = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "call"),
            *("--config", str(sec.tmp / f"{INSTANCE}.yaml")),
            *("--instance", INSTANCE, "--run-dir", str(sec.tmp / "run")),
            *("--caller", via_cli, "--hold", "3"),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    facts = json.loads(out.stdout)
    assert facts["linkedid"], out.stdout + out.stderr  # found by its SIP Call-ID
    time.sleep(1.5)  # Redis's AOF is written every second

    found = []
    for path in stack_files(sec):
        for number in (reached_agent, via_cli):
            if number in path.name:
                found.append(f"named after the caller: {path}")
        if not path.is_file() or path.is_relative_to(sec.tmp / "run" / INSTANCE / "calls"):
            continue
        data = path.read_bytes()
        found += [f"{path} holds {n}" for n in (reached_agent, via_cli) if n.encode() in data]
    assert not found, "\n".join(found)
