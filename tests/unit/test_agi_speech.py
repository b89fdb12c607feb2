"""Listen over FastAGI: the speech service's Redis hand-off, with a real redis-server and a
fake Asterisk that plays the AudioSocket part (it publishes the draft the service would)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from agi_scripts.handlers import ivr as ivr_handler
from agi_scripts.protocol import split_words
from agi_scripts.server import AgiApp, AgiServer
from agi_scripts.speech_listen import SpeechListener
from hotline import dialplan_vars as V
from hotline.config import parse_config
from speech.service import ALIVE_KEY, DRAFT_CHANNEL, DRAFT_KEY, LISTEN_KEY

ROOT = Path(__file__).resolve().parents[2]
# hotline.yaml with key 6 leading to "say your demand" (speech:demand) instead of a seat
CONFIG = parse_config(
    (ROOT / "hotline.yaml")
    .read_text(encoding="utf-8")
    .replace('"6": seat:wangshang', '"6": speech:demand')
)
Answer = Callable[[list[str]], Awaitable[list[str]]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_port)
    await client.flushdb()
    yield client
    await client.aclose()


async def fake_asterisk(port: int, answer: Answer) -> list[list[str]]:
    env = (
        "agi_network: yes\nagi_network_script: ivr\nagi_uniqueid: 1763841600.5\n"
        "agi_callerid: 13800001111\nagi_dnid: 12345\n\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env.encode())
    commands: list[list[str]] = []
    async with asyncio.timeout(10):
        while raw := await reader.readline():
            words = split_words(raw.decode().removesuffix("\n"))
            commands.append(words)
            for out in await answer(words):
                writer.write(out.encode() + b"\n")
    writer.close()
    return commands


def caller_presses(key: str, on_exec: Answer | None = None) -> Answer:
    async def answer(words: list[str]) -> list[str]:
        if words[:2] == ["STREAM", "FILE"]:
            pressed = key if words[2] == "hotline/main-menu" else ""
            return [f"200 result={ord(pressed) if pressed else 0} endpos=800"]
        if words[0] == "EXEC" and on_exec is not None:
            return await on_exec(words)
        if words[:2] == ["GET", "VARIABLE"]:
            return ["200 result=0"]
        return ["200 result=1"]

    return answer


async def run_call(listener: SpeechListener, answer: Answer) -> list[list[str]]:
    app = AgiApp(config=CONFIG, handlers={"ivr": ivr_handler.handle})
    app.listener = listener
    server = AgiServer(app)
    _, port = await server.start("127.0.0.1", 0)
    try:
        return await fake_asterisk(port, answer)
    finally:
        await server.stop()


def variables(commands: list[list[str]]) -> dict[str, str]:
    return {w[2]: w[3] for w in commands if w[:2] == ["SET", "VARIABLE"]}


async def test_caller_says_gongjijin_and_the_draft_routes_to_the_gjj_queue(redis: Redis) -> None:
    await redis.set(ALIVE_KEY, "1", ex=30)
    seen: dict[str, object] = {}

    async def speech_service(words: list[str]) -> list[str]:
        # what Asterisk + the speech service do during AudioSocket(<uuid>,host:port)
        assert words[1] == "AudioSocket"
        listen_id, service = words[2].split(",")
        seen["service"] = service
        listen = json.loads(await redis.get(LISTEN_KEY.format(listen_id=listen_id)))
        seen["listen"] = listen
        draft = {
            "call_id": listen["call_id"],
            "listen_id": listen_id,
            "transcript": "我想问一下公积金怎么提取",
            "fields": {"seat": "gjj", "confidence": {"seat": 0.92}, "emergency": None},
        }
        text = json.dumps(draft, ensure_ascii=False)
        await redis.set(DRAFT_KEY.format(call_id=listen["call_id"]), text, ex=60)
        await redis.publish(DRAFT_CHANNEL, text)
        return ["200 result=0"]

    listener = SpeechListener(redis, port=45999, draft_wait_s=2.0)
    commands = await run_call(listener, caller_presses("6", speech_service))
    played = [w[2] for w in commands if w[:2] == ["STREAM", "FILE"]]
    assert "hotline/speak-demand" in played
    assert seen["service"] == "127.0.0.1:45999"
    assert seen["listen"] == {"call_id": "1763841600.5", "max_s": 20.0, "silence_ms": 1500}
    assert variables(commands)[V.QUEUE] == "seat_gjj"
    assert variables(commands)[V.ROUTE] == "queue"


async def test_speech_service_down_caller_is_not_asked_to_speak(redis: Redis) -> None:
    listener = SpeechListener(redis, draft_wait_s=2.0)  # no heartbeat key: service down
    commands = await run_call(listener, caller_presses("6"))
    assert "hotline/speak-demand" not in [w[2] for w in commands if w[0] == "STREAM"]
    assert not [w for w in commands if w[0] == "EXEC"]
    assert variables(commands)[V.QUEUE] == "seat_zonghe"


async def test_redis_down_means_keypad_and_a_person_quickly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    started = time.monotonic()
    commands = await run_call(SpeechListener(dead), caller_presses("6"))
    await dead.aclose()
    assert time.monotonic() - started < 3
    assert not [w for w in commands if w[0] == "EXEC"]
    assert variables(commands)[V.QUEUE] == "seat_zonghe"
    assert any("speech unavailable" in r.getMessage() for r in caplog.records)


async def test_no_draft_in_time_goes_to_the_general_seat(redis: Redis) -> None:
    await redis.set(ALIVE_KEY, "1", ex=30)

    async def silent_service(words: list[str]) -> list[str]:
        return ["200 result=0"]  # the socket closed but no draft is ever published

    started = time.monotonic()
    listener = SpeechListener(redis, draft_wait_s=0.3)
    commands = await run_call(listener, caller_presses("6", silent_service))
    assert time.monotonic() - started < 3
    assert [w[1] for w in commands if w[0] == "EXEC"] == ["AudioSocket"]
    assert variables(commands)[V.QUEUE] == "seat_zonghe"


async def test_line_gone_quiet_audiosocket_fails_but_the_draft_still_routes(redis: Redis) -> None:
    """Asterisk answers -1 when the caller's phone sent no audio for 2 s after speaking; the
    service had the speech and publishes the draft a moment later."""
    await redis.set(ALIVE_KEY, "1", ex=30)

    async def quiet_line(words: list[str]) -> list[str]:
        listen_id = words[2].split(",")[0]
        listen = json.loads(await redis.get(LISTEN_KEY.format(listen_id=listen_id)))

        async def publish_later() -> None:
            await asyncio.sleep(0.4)
            draft = {
                "call_id": listen["call_id"],
                "listen_id": listen_id,
                "transcript": "少儿医保怎么交费",
                "fields": {"seat": "yibao", "confidence": {"seat": 0.9}},
            }
            text = json.dumps(draft, ensure_ascii=False)
            await redis.set(DRAFT_KEY.format(call_id=listen["call_id"]), text, ex=60)
            await redis.publish(DRAFT_CHANNEL, text)

        asyncio.get_running_loop().create_task(publish_later())
        return ["200 result=-1"]

    listener = SpeechListener(redis, draft_wait_s=5.0)
    commands = await run_call(listener, caller_presses("6", quiet_line))
    assert variables(commands)[V.QUEUE] == "seat_yibao"
