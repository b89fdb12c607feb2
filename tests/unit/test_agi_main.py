"""``python -m agi_scripts serve`` as a process: refuses bad configs, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from agi_scripts.protocol import split_words
from hotline import dialplan_vars as V

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_serve_refuses_a_config_that_does_not_validate(tmp_path: Path) -> None:
    bad = tmp_path / "hotline.yaml"
    text = (ROOT / "hotline.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace('"2": seat:gjj', '"2": seat:nosuchseat'), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "agi_scripts", "serve", "--config", str(bad), "--port", "0"],
        capture_output=True, text=True, timeout=30, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refusing to start" in proc.stderr
    assert "menus.main.options.2" in proc.stderr and "nosuchseat" in proc.stderr
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"2": seat:gjj' in t)
    assert f"{bad}:{line}:" in proc.stderr
    assert "listening" not in proc.stdout


def test_serve_refuses_a_missing_config_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agi_scripts", "serve", "--config", str(tmp_path / "none.yaml")],
        capture_output=True, text=True, timeout=30, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 2 and "No such file" in proc.stderr


def test_serve_takes_a_call_and_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agi_scripts", "serve", "--config", str(ROOT / "hotline.yaml"),
         "--host", "127.0.0.1", "--port", "0", "--no-speech", "--no-caller-rules"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("FastAGI listening on 127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        sent: list[list[str]] = []
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"agi_network_script: ivr\nagi_uniqueid: 42.1\nagi_callerid: 1380000\n\n")
            f = sock.makefile("rwb")
            while raw := f.readline():
                words = split_words(raw.decode()[:-1])
                sent.append(words)
                if words[:3] == ["STREAM", "FILE", "hotline/main-menu"]:
                    reply = f"200 result={ord('0')} endpos=100"
                elif words[:2] == ["GET", "VARIABLE"]:
                    reply = "200 result=0"
                else:
                    reply = "200 result=0 endpos=100" if words[0] == "STREAM" else "200 result=1"
                f.write(reply.encode() + b"\n")
                f.flush()
        variables = {w[2]: w[3] for w in sent if w[:2] == ["SET", "VARIABLE"]}
        assert variables[V.QUEUE] == "seat_zonghe" and variables[V.ROUTE] == "queue"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "call 42.1 route=ivr outcome=done" in stderr
        assert "FastAGI stopped" in stderr and "'completed': 1" in stderr
        assert " ERROR " not in stderr and "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
