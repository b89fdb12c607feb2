"""The AudioSocket service with a fake recogniser and an in-memory Redis stand-in."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hotline.config import HotlineConfig, load_config
from speech.fields import extract
from speech.recognizers import Transcript
from speech.service import (
    HANGUP_MESSAGE,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_UUID,
    ServiceSettings,
    SpeechService,
    _jsonable,
    audiosocket_args,
    frame,
    register_listen,
    wait_for_draft,
)

ROOT = Path(__file__).resolve().parents[2]


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.published: list[tuple[str, str]] = []

    async def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.data[key] = value

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def publish(self, channel: str, message: str) -> None:
        self.published.append((channel, message))

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def exists(self, key: str) -> int:
        return int(key in self.data)


class BrokenRedis:
    def pubsub(self) -> Any:
        raise ConnectionError("redis is down")


class FakeSession:
    def __init__(self, rec: FakeRecognizer) -> None:
        self.rec = rec
        self.bytes = 0

    def feed(self, pcm: bytes) -> str | None:
        self.bytes += len(pcm)
        return None

    def finish(self) -> Transcript:
        if self.rec.fail:
            raise RuntimeError("model crashed")
        self.rec.fed.append(self.bytes)
        return Transcript(self.rec.text, 0.9, "fake", self.bytes / 16000, 0.01)


class FakeRecognizer:
    name = "fake"

    def __init__(
        self,
        text: str = "我想咨询一下公积金提取需要哪些材料",
        fail: bool = False,
        broken: bool = False,
    ):
        self.text, self.fail, self.broken = text, fail, broken
        self.fed: list[int] = []

    def start(self, sample_rate: int = 8000) -> FakeSession:
        if self.broken:
            raise RuntimeError("model not loaded")
        return FakeSession(self)


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(ROOT / "hotline.yaml")


async def start(
    config: HotlineConfig, rec: FakeRecognizer, tmp_path: Path
) -> tuple[SpeechService, FakeRedis]:
    redis = FakeRedis()
    settings = ServiceSettings(port=0, audio_dir=tmp_path / "audio", no_speech_s=2.0)
    svc = SpeechService(config, rec, redis, settings)  # type: ignore[arg-type]
    await svc.start()
    return svc, redis


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (np.sin(2 * np.pi * 200 * t) * 8000).astype(np.int16)


async def send_audio(writer: asyncio.StreamWriter, samples: np.ndarray) -> None:
    for i in range(0, samples.size, 160):
        writer.write(frame(KIND_AUDIO, samples[i : i + 160].tobytes()))
    await writer.drain()


async def drafts(redis: FakeRedis, n: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(redis.published) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return [json.loads(m) for _, m in redis.published]


async def test_caller_stops_talking_call_is_released_and_draft_published(config, tmp_path) -> None:
    rec = FakeRecognizer()
    svc, redis = await start(config, rec, tmp_path)
    try:
        listen_id = await register_listen(redis, "call-7", max_s=10, silence_ms=500)  # type: ignore[arg-type]
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
        await send_audio(writer, np.concatenate([tone(1.0), np.zeros(8000, np.int16)]))
        got = await asyncio.wait_for(reader.read(), 3)
        assert got == HANGUP_MESSAGE  # then EOF: Asterisk leaves AudioSocket()
        (draft,) = await drafts(redis)
        assert draft["call_id"] == "call-7" and draft["listen_id"] == listen_id
        assert draft["transcript"] == rec.text and draft["ended_by"] == "silence"
        assert draft["error"] is None
        assert Path(draft["audio_path"]).is_file()
        assert 1.4 <= draft["audio_seconds"] <= 1.6  # up to the end of the silence window
        assert rec.fed == [int(draft["audio_seconds"] * 8000) * 2]
        assert json.loads(redis.data["hotline:draft:call-7"]) == draft
        # the fields are the real extractor's reading of the transcript, in full
        assert draft["fields"] == _jsonable(extract(rec.text, config))
        assert draft["fields"]["type"] == "咨询" and draft["fields"]["seat"] == "gjj"
        assert draft["fields"]["transcript"] == rec.text
    finally:
        await svc.stop()


async def test_recogniser_crash_still_gives_an_empty_draft_so_the_ivr_goes_on(
    config, tmp_path
) -> None:
    svc, redis = await start(config, FakeRecognizer(fail=True), tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        listen_id = str(uuid.uuid4())  # never registered: the UUID stands for the call id
        writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
        await send_audio(writer, np.concatenate([tone(0.5), np.zeros(16000, np.int16)]))
        await asyncio.wait_for(reader.read(), 3)
        (draft,) = await drafts(redis)
        assert draft["call_id"] == listen_id
        assert draft["transcript"] == "" and "model crashed" in draft["error"]
    finally:
        await svc.stop()


async def test_recogniser_that_cannot_start_still_releases_the_call(config, tmp_path) -> None:
    svc, redis = await start(config, FakeRecognizer(broken=True), tmp_path)
    try:
        listen_id = await register_listen(redis, "call-8", silence_ms=500)  # type: ignore[arg-type]
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
        await send_audio(writer, np.concatenate([tone(0.5), np.zeros(8000, np.int16)]))
        assert await asyncio.wait_for(reader.read(), 3) == HANGUP_MESSAGE
        (draft,) = await drafts(redis)
        assert draft["transcript"] == "" and "no recogniser session" in draft["error"]
        assert Path(draft["audio_path"]).is_file()
    finally:
        await svc.stop()


async def test_key_press_ends_listening_and_is_reported(config, tmp_path) -> None:
    svc, redis = await start(config, FakeRecognizer(), tmp_path)
    try:
        listen_id = await register_listen(redis, "call-9")  # type: ignore[arg-type]
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(frame(KIND_UUID, uuid.UUID(listen_id).bytes))
        await send_audio(writer, tone(0.3))
        writer.write(frame(KIND_DTMF, b"0"))
        await asyncio.wait_for(reader.read(), 3)
        (draft,) = await drafts(redis)
        assert draft["ended_by"] == "dtmf" and draft["dtmf"] == "0"
    finally:
        await svc.stop()


async def test_a_client_that_does_not_start_with_a_uuid_is_refused(config, tmp_path) -> None:
    svc, redis = await start(config, FakeRecognizer(), tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(frame(KIND_AUDIO, b"\x00\x00" * 160))
        got = await asyncio.wait_for(reader.read(), 3)
        assert got[:1] == bytes([KIND_ERROR])
        assert redis.published == []
    finally:
        await svc.stop()


async def test_stopping_the_service_releases_a_caller_mid_sentence(config, tmp_path) -> None:
    svc, redis = await start(config, FakeRecognizer(), tmp_path)
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(frame(KIND_UUID, uuid.uuid4().bytes))
    await send_audio(writer, tone(0.5))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await svc.stop()
    await asyncio.wait_for(reader.read(), 2)
    assert time.monotonic() - t0 < 1.0
    (draft,) = await drafts(redis)
    assert draft["ended_by"] == "hangup"


async def test_wait_for_draft_fails_open_when_redis_is_down() -> None:
    t0 = time.monotonic()
    assert await wait_for_draft(BrokenRedis(), "call-1", timeout_s=1.0) is None  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 0.9  # well under the 1 s it would wait


def test_audiosocket_arguments_for_the_agi_exec() -> None:
    listen_id = str(uuid.uuid4())
    assert audiosocket_args(listen_id, port=4574) == f"{listen_id},127.0.0.1:4574"
    with pytest.raises(ValueError):
        audiosocket_args("1732300000.12")  # a linkedid is not a UUID
