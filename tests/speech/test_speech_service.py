"""The live speech service over a real TCP AudioSocket, a real Redis and the real Whisper model.

A test client plays Asterisk: it connects, sends the listen UUID, then the caller's audio as
20 ms slin frames in real time, the way app_audiosocket does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from speech import audio as au
from speech.service import (
    HANGUP_MESSAGE,
    KIND_AUDIO,
    KIND_UUID,
    frame,
    register_listen,
    speech_service_alive,
    wait_for_draft,
)

pytestmark = pytest.mark.speech

ROOT = Path(__file__).resolve().parents[2]
HOTLINE = ROOT.parent / "shared/audio/hotline"
FRAME = 320  # 20 ms of 8 kHz slin


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cer(hyp: str, ref: str) -> float:
    strip = str.maketrans("", "", "，。、！？,.!? ")
    h, r = hyp.translate(strip), ref.translate(strip)
    prev = list(range(len(h) + 1))
    for i, rc in enumerate(r, 1):
        cur = [i]
        for j, hc in enumerate(h, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc)))
        prev = cur
    return prev[-1] / max(1, len(r))


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


class Service:
    """``python -m speech serve`` as a child process (engine auto → Whisper: no Vosk model)."""

    def __init__(self, redis_port: int, audio_dir: Path) -> None:
        self.port = _free_port()
        self.audio_dir = audio_dir
        self.log = audio_dir.parent / "service.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "speech", "serve", "--config", str(ROOT / "hotline.yaml"),
                 "--port", str(self.port), "--redis-port", str(redis_port),
                 "--audio-dir", str(audio_dir)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "HOTLINE_VOSK_MODEL": str(audio_dir / "no-vosk")},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        try:
            while "listening on" not in self.log.read_text():
                assert self.proc.poll() is None, f"service exited: {self.log.read_text()}"
                assert time.monotonic() < deadline, "service did not start within 60 s"
                time.sleep(0.1)
        except AssertionError:
            self.stop()  # leave no service behind
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def service(redis_port: int, tmp_path: Path) -> Iterator[Service]:
    svc = Service(redis_port, tmp_path / "audio")
    yield svc
    svc.stop()


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    r = Redis(host="127.0.0.1", port=redis_port)
    yield r
    await r.aclose()


class Caller:
    """Plays Asterisk's side of AudioSocket for one call."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed_at: float | None = None
        self.received = b""

    @classmethod
    async def connect(cls, port: int, listen_id: str) -> Caller:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
        return cls(reader, writer)

    async def _watch(self) -> None:
        try:
            while chunk := await self.reader.read(4096):
                self.received += chunk
        except ConnectionError:  # a killed service resets the connection: closed, too
            pass
        self.closed_at = time.monotonic()

    async def speak(self, samples: np.ndarray, then_silence_s: float = 5.0) -> float:
        """Send audio in real time until the service closes; return when the speech ended."""
        watcher = asyncio.create_task(self._watch())
        audio = np.concatenate((samples, np.zeros(int(8000 * then_silence_s), np.int16)))
        start = time.monotonic()
        try:
            for i, k in enumerate(range(0, audio.size, FRAME // 2)):
                if watcher.done():
                    break
                self.writer.write(frame(KIND_AUDIO, audio[k : k + FRAME // 2].tobytes()))
                await self.writer.drain()
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
        except ConnectionError:
            pass
        await asyncio.wait_for(watcher, 5)
        self.writer.close()
        return start + samples.size / 8000


async def test_caller_speaks_then_draft_with_transcript_appears_in_redis(
    service: Service, redis: Redis
) -> None:
    call_id = "1732300000.101"
    samples, rate = au.read_wav(HOTLINE / "dev02.wav")
    assert rate == 8000
    assert await speech_service_alive(redis)
    listen_id = await register_listen(redis, call_id, max_s=20, silence_ms=800)
    caller = await Caller.connect(service.port, listen_id)
    speech_end = await caller.speak(samples)

    # The service hung up on the caller's trailing silence, long before the 5 s of padding.
    assert caller.closed_at is not None
    released_after = caller.closed_at - speech_end
    print(f"\nsocket closed {released_after:.2f} s after the audio ended (incl. 0.9 s of silence)")
    assert released_after < 2.5
    assert caller.received.startswith(HANGUP_MESSAGE)

    draft = await wait_for_draft(redis, call_id, timeout_s=10, listen_id=listen_id)
    ready_after = time.monotonic() - caller.closed_at
    assert draft is not None, "no draft within 10 s"
    ref = "我想咨询一下公积金提取需要哪些材料。"
    cer = _cer(draft["transcript"], ref)
    print(f"draft ready ≤{ready_after:.2f} s after release: {draft['transcript']} CER {cer:.2f}")
    print({k: v for k, v in draft.items() if k not in ("fields",)})
    assert draft["ended_by"] == "silence"
    assert draft["engine"] == "whisper"
    assert cer < 0.5
    assert "材料" in draft["transcript"]
    assert Path(draft["audio_path"]).is_file()
    kept, kept_rate = au.read_wav(draft["audio_path"])
    assert kept_rate == 8000 and kept.size >= samples.size * 0.8
    stored = await redis.get(f"hotline:draft:{call_id}")
    assert stored is not None and (await redis.ttl(f"hotline:draft:{call_id}")) > 0


async def test_silent_caller_gets_released_and_an_empty_draft(
    service: Service, redis: Redis
) -> None:
    call_id = "1732300000.102"
    listen_id = await register_listen(redis, call_id, max_s=20, silence_ms=800)
    caller = await Caller.connect(service.port, listen_id)
    t0 = time.monotonic()
    await caller.speak(np.zeros(0, np.int16), then_silence_s=12)
    assert caller.closed_at is not None
    assert 5.0 <= caller.closed_at - t0 < 8.0  # no_speech_s is 6 s
    draft = await wait_for_draft(redis, call_id, timeout_s=5, listen_id=listen_id)
    assert draft is not None
    assert draft["ended_by"] == "no_speech" and draft["transcript"] == ""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
async def test_service_dies_mid_utterance_caller_is_released_and_wait_is_bounded(
    service: Service, redis: Redis, sig: signal.Signals
) -> None:
    call_id = f"1732300000.2{sig.value:02d}"
    samples, _ = au.read_wav(HOTLINE / "dev01.wav")
    listen_id = await register_listen(redis, call_id)
    caller = await Caller.connect(service.port, listen_id)
    speaking = asyncio.create_task(caller.speak(samples))
    await asyncio.sleep(2.0)
    killed_at = time.monotonic()
    os.kill(service.proc.pid, sig)
    await asyncio.wait_for(speaking, 10)
    assert caller.closed_at is not None
    print(f"\n{sig.name}: socket closed {caller.closed_at - killed_at:.3f} s after the signal")
    assert caller.closed_at - killed_at < 1.0

    t0 = time.monotonic()
    draft = await wait_for_draft(redis, call_id, timeout_s=1.5, listen_id=listen_id)
    waited = time.monotonic() - t0
    if sig == signal.SIGKILL:
        assert draft is None  # the IVR goes on by keypad
    assert waited < 2.0
