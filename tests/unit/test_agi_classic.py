"""The classic (pyst2, stdin/stdout) IVR script, run as a real process with a scripted
Asterisk on its pipes: same flow, same variables as the FastAGI handler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from agi_scripts.protocol import split_words
from hotline import dialplan_vars as V

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "hotline.yaml"
Answer = Callable[[list[str], subprocess.Popen[bytes]], list[str]]


def env_block(name: str = "张三", callerid: str = "13800001111") -> bytes:
    lines = [
        "agi_request: /opt/hotline/.venv/bin/python",
        "agi_channel: PJSIP/carrier-00000002",
        "agi_uniqueid: 1763841600.2",
        f"agi_callerid: {callerid}",
        f"agi_calleridname: {name}",
        "agi_dnid: 12345",
        "agi_extension: 12345",
        "agi_enhanced: 0.0",
        "agi_arg_1: hotline.yaml",
    ]
    return ("\n".join(lines) + "\n\n").encode()


def keys_pressed(keys: dict[str, str]) -> Answer:
    """Prompts play to the end unless ``keys[prompt]`` is pressed; waits get ``keys['wait']``."""

    def answer(words: list[str], proc: subprocess.Popen[bytes]) -> list[str]:
        verb = " ".join(words[:2])
        if verb == "STREAM FILE":
            key = keys.get(words[2])
            return [f"200 result={ord(key) if key else 0} endpos=8000"]
        if verb == "WAIT FOR":
            key = keys.get("wait")
            return [f"200 result={ord(key) if key else 0}"]
        if verb == "GET VARIABLE":
            return ["200 result=0"]
        return ["200 result=1"]

    return answer


class ScriptedAsterisk:
    """Starts the script like res_agi does and answers each command line it writes."""

    def __init__(self, answer: Answer, env: bytes | None = None, *extra: str) -> None:
        self.answer = answer
        self.env = env or env_block()
        self.extra = extra
        self.commands: list[list[str]] = []
        self.raw: list[bytes] = []

    def run(self, timeout: float = 20.0) -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agi_scripts.classic.ivr_agi", str(CONFIG), *self.extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(self.env)
            proc.stdin.flush()
            for raw in proc.stdout:
                self.raw.append(raw)
                words = split_words(raw.decode("utf-8").removesuffix("\n"))
                self.commands.append(words)
                try:
                    for out in self.answer(words, proc):
                        proc.stdin.write(out.encode() + b"\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    break
            proc.stdin.close()
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            return proc.wait(), stderr
        finally:
            killer.cancel()

    def variables(self) -> dict[str, str]:
        return {w[2]: w[3] for w in self.commands if w[:2] == ["SET", "VARIABLE"]}

    def played(self) -> list[str]:
        return [w[2] for w in self.commands if w[:2] == ["STREAM", "FILE"]]


def test_classic_caller_presses_2_reaches_gongjijin_like_fastagi() -> None:
    ast = ScriptedAsterisk(keys_pressed({"hotline/main-menu": "2"}))
    code, stderr = ast.run()
    assert code == 0, stderr
    assert ast.played()[:2] == ["hotline/greeting", "hotline/main-menu"]
    vars_ = ast.variables()
    assert vars_[V.QUEUE] == "seat_gjj" and vars_[V.SEAT] == "gjj"
    assert vars_[V.IVR_PATH] == "main>2"
    assert [w[2] for w in ast.commands if w[:2] == ["SET", "VARIABLE"]][-1] == V.ROUTE
    assert vars_[V.ROUTE] == "queue"


def test_classic_silent_caller_hears_the_menu_again_then_reaches_a_person() -> None:
    ast = ScriptedAsterisk(keys_pressed({}))
    code, stderr = ast.run()
    assert code == 0, stderr
    retries = 3  # hotline.yaml main menu
    assert ast.played().count("hotline/main-menu") == retries
    assert ast.played().count("hotline/no-input") == retries
    assert ast.variables()[V.QUEUE] == "seat_zonghe"


def test_classic_emergency_keys_set_the_emergency_route() -> None:
    ast = ScriptedAsterisk(keys_pressed({"hotline/main-menu": "9", "hotline/emergency-menu": "2"}))
    code, stderr = ast.run()
    assert code == 0, stderr
    vars_ = ast.variables()
    assert vars_[V.EMERGENCY_LINE] == "119" and vars_[V.ROUTE] == "emergency"
    assert "9" in vars_[V.EMERGENCY_REASON]


def test_classic_hostile_caller_name_cannot_inject_a_command() -> None:
    """pyst2 alone would write the name raw inside quotes; here every line on the wire is
    one command and the name stays one word."""
    name = '"; EXEC Dial PJSIP/9999@evil "\\'

    def answer(words: list[str], proc: subprocess.Popen[bytes]) -> list[str]:
        if words[:2] == ["GET", "VARIABLE"] and words[2] == V.CALL_ID:
            return [f"200 result=1 ({name})"]  # the call id comes back hostile too
        return keys_pressed({"hotline/main-menu": "2"})(words, proc)

    ast = ScriptedAsterisk(answer, env_block(name=name))
    code, stderr = ast.run()
    assert code == 0, stderr
    assert all(raw.count(b"\n") == 1 for raw in ast.raw)
    assert not [w for w in ast.commands if w[0] == "EXEC"]
    assert ast.variables()[V.ROUTE] == "queue"


def test_classic_caller_hangs_up_mid_menu_exits_cleanly() -> None:
    """Asterisk sends SIGHUP to a process AGI, then answers the interrupted prompt with -1."""

    hung_up = False

    def answer(words: list[str], proc: subprocess.Popen[bytes]) -> list[str]:
        nonlocal hung_up
        if hung_up:  # a dead channel: nothing may be played any more
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        if words[:3] == ["STREAM", "FILE", "hotline/main-menu"]:
            hung_up = True
            proc.send_signal(signal.SIGHUP)
            return ["200 result=-1 endpos=2400"]
        return keys_pressed({})(words, proc)

    ast = ScriptedAsterisk(answer)
    code, stderr = ast.run()
    assert code == 0
    assert "Traceback" not in stderr
    assert V.ROUTE not in ast.variables()
    assert ast.commands[-1][:3] == ["STREAM", "FILE", "hotline/main-menu"]


def test_classic_bad_config_sets_nothing_so_the_dialplan_falls_back(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seats: []\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "agi_scripts.classic.ivr_agi", str(bad)],
        input=env_block() + b"200 result=1\n",
        capture_output=True,
        cwd=ROOT,
        timeout=20,
    )
    assert proc.returncode == 1
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith('VERBOSE "hotline ivr_agi cannot start')
    assert "invalid hotline config" in proc.stderr.decode()
