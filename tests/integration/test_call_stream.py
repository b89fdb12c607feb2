"""The call event stream on a real redis-server, with the record keeper as a real process
(``python -m calls serve --no-bridge``): killed and started again it misses no event and
applies none twice; a malformed entry is refused with a log line and the keeper goes on;
Redis down never holds a producer."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_throttle_redis import RedisServer, _free_port

from calls.stream import CallStream
from hotline import safe_yaml
from hotline.call import EVENTS_STREAM, CallEvent

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    yield srv
    srv.stop()


class Keeper:
    """``python -m calls serve --no-bridge`` on the test Redis, writing to ``store``."""

    def __init__(self, tmp: Path, redis_port: int) -> None:
        data = safe_yaml.load_file(REPO / "hotline.yaml")
        data["redis"]["port"] = redis_port
        data["calls"]["path"] = str(tmp / "calls.sqlite3")
        self.config = tmp / "calls.yaml"
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        self.store = tmp / "calls.sqlite3"
        self.log = tmp / "keeper.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "calls", "serve", "--no-bridge", "--config", str(self.config)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def agents(self) -> dict[str, int]:
        """call id → events applied to its record."""
        if not self.store.exists():
            return {}
        try:
            with sqlite3.connect(self.store) as db:
                rows = db.execute("SELECT call_id, json_extract(record, '$.events') FROM calls")
                return {cid: n for cid, n in rows}
        except sqlite3.OperationalError:  # created, no table yet
            return {}

    def wait_for(self, want: dict[str, int], timeout_s: float = 30.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.agents()
            if got == want:
                return got
            time.sleep(0.1)
        return self.agents()


@pytest.fixture
def keeper(tmp_path: Path, server: RedisServer) -> Iterator[Keeper]:
    server.client.delete(EVENTS_STREAM)
    k = Keeper(tmp_path, server.port)
    yield k
    k.stop()


def publish(port: int, events: list[CallEvent]) -> None:
    async def go() -> None:
        from redis.asyncio import Redis

        stream = CallStream(Redis(port=port))
        for e in events:
            assert await stream.publish(e) is not None
        await stream.close()

    asyncio.run(go())


def agent_events(calls: range, agents: range) -> list[CallEvent]:
    return [
        CallEvent("agent", f"1700.{c}", time.time(), "test", data={"agent": str(1000 + a)})
        for a in agents
        for c in calls
    ]


def test_a_keeper_killed_and_started_again_misses_no_event(
    keeper: Keeper, server: RedisServer
) -> None:
    publish(server.port, agent_events(range(5), range(0, 40)))
    keeper.start()
    deadline = time.monotonic() + 30
    while sum(keeper.agents().values()) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    keeper.kill()  # mid-stream: some read and not acknowledged, most not read at all
    seen_before = sum(keeper.agents().values())
    print("records applied before the kill:", seen_before)
    assert 0 < seen_before < 200
    publish(server.port, agent_events(range(5), range(40, 60)))  # while it is down
    keeper.start()
    want = {f"1700.{c}": 60 for c in range(5)}
    assert keeper.wait_for(want) == want  # every event once: none lost, none applied twice
    with sqlite3.connect(keeper.store) as db:
        agents = db.execute("SELECT json_array_length(record, '$.agents') FROM calls").fetchall()
    assert agents == [(60,)] * 5
    assert server.client.xpending(EVENTS_STREAM, "records")["pending"] == 0


def test_a_malformed_event_is_refused_with_a_log_line_and_the_keeper_goes_on(
    keeper: Keeper, server: RedisServer
) -> None:
    keeper.start()
    publish(server.port, agent_events(range(1), range(0, 2)))
    server.client.xadd(EVENTS_STREAM, {"kind": "agent", "call_id": "$(reboot)", "at": "1"})
    server.client.xadd(EVENTS_STREAM, {"kind": "agent", "call_id": "1700.0", "data": "{oops"})
    publish(server.port, agent_events(range(1), range(2, 4)))
    assert keeper.wait_for({"1700.0": 4}) == {"1700.0": 4}
    log = keeper.log.read_text(encoding="utf-8")
    assert log.count("refused malformed event") == 2
    assert "no valid call_id" in log and "no valid time" in log
    assert server.client.xpending(EVENTS_STREAM, "records")["pending"] == 0


def test_redis_down_never_holds_a_producer() -> None:
    async def go() -> tuple[str | None, float]:
        from redis.asyncio import Redis

        stream = CallStream(Redis(port=_free_port(), socket_connect_timeout=5), timeout_s=0.3)
        started = time.monotonic()
        entry = await stream.publish(CallEvent("ended", "1.1", time.time(), "test"))
        took = time.monotonic() - started
        await stream.close()
        return entry, took

    entry, took = asyncio.run(go())
    assert entry is None and took < 1.0


def test_the_stream_stays_bounded(server: RedisServer) -> None:
    async def go() -> int:
        from redis.asyncio import Redis

        stream = CallStream(Redis(port=server.port), key="test:bounded", maxlen=1000)
        for i in range(3000):
            await stream.publish(CallEvent("ended", f"9.{i}", time.time(), "test"))
        await stream.close()
        return int(server.client.xlen("test:bounded"))

    assert asyncio.run(go()) < 1200  # MAXLEN ~ trims in whole nodes (100 entries)

    async def trim() -> int:
        from redis.asyncio import Redis

        stream = CallStream(Redis(port=server.port), key="test:bounded", retention_s=60)
        gone = await stream.trim(now=time.time() + 3600)
        await stream.close()
        return gone

    assert asyncio.run(trim()) > 0 and server.client.xlen("test:bounded") == 0


def test_a_replacement_keeper_claims_what_a_dead_one_left_unacknowledged(
    keeper: Keeper, server: RedisServer
) -> None:
    data = safe_yaml.load_file(keeper.config)
    data["calls"]["claim_idle_s"] = 1.0
    keeper.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    publish(server.port, agent_events(range(5), range(0, 40)))
    keeper.start()
    deadline = time.monotonic() + 30
    while sum(keeper.agents().values()) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    keeper.kill()  # records-1 dies holding entries it read and never acknowledged
    left = server.client.xpending_range(EVENTS_STREAM, "records", "-", "+", 1000, "records-1")
    print("left unacknowledged by the dead keeper:", len(left))
    assert left
    assert keeper.proc is not None
    keeper.proc = None
    argv = [sys.executable, "-m", "calls", "serve", "--no-bridge", "--name", "records-2",
            "--config", str(keeper.config)]  # fmt: skip
    with open(keeper.log, "ab") as out:
        keeper.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    want = {f"1700.{c}": 40 for c in range(5)}
    assert keeper.wait_for(want) == want  # the dead one's entries too, each once
    deadline = time.monotonic() + 10
    while server.client.xpending(EVENTS_STREAM, "records")["pending"] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert server.client.xpending(EVENTS_STREAM, "records")["pending"] == 0
    assert "consumer records-2 claimed" in keeper.log.read_text(encoding="utf-8")


def test_hotline_call_and_the_draft_keeper_read_a_listens_draft_from_the_stream(
    keeper: Keeper, server: RedisServer, tmp_path: Path
) -> None:
    from cli.commands.call import fetch_draft
    from hotline.call import TicketDraft
    from hotline.config import load_config
    from speech.drafts import keep_call_draft
    from speech.service import ALIVE_KEY
    from tickets.sqlite import SqliteTicketStore

    data = safe_yaml.load_file(keeper.config)
    data["tickets"]["path"] = str(tmp_path / "tickets.sqlite3")
    data["tickets"]["key_file"] = str(tmp_path / "pii.key")
    keeper.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    config = load_config(keeper.config)
    began = time.time()

    def said(listen: str, seat: str, words: str) -> CallEvent:
        message = {"call_id": "1700.5", "listen_id": listen, "audio_path": "/x/a.wav",
                   "fields": {"seat": seat, "transcript": words}}  # fmt: skip
        draft = TicketDraft.parse(message)
        assert draft is not None
        return CallEvent("draft", "1700.5", time.time(), "speech", data={"draft": draft.stored()})

    publish(server.port, [said("L1", "gjj", "公积金提取，电话138****2345")])
    # before the IVR stored anything, hotline call prints the stream's draft
    assert asyncio.run(fetch_draft(config, "1700.5", wait_s=1.0, since=began)) == {
        "seat": "gjj", "call_id": "1700.5", "transcript": "公积金提取，电话138****2345",
        "audio": "/x/a.wav", "listen_id": "L1",
    }  # fmt: skip
    assert asyncio.run(fetch_draft(config, "1700.6", wait_s=0.5, since=began)) is None

    async def keep_second_listen() -> dict | None:
        stream = CallStream.from_config(config)
        store = SqliteTicketStore.from_config(config)
        try:
            await stream.redis.set(ALIVE_KEY, "1", ex=30)
            waiting = asyncio.create_task(
                keep_call_draft(stream, store, "1700.5", "13900001111", 10.0, "L2", began)
            )
            await asyncio.sleep(0.5)  # the second listen's draft comes later
            await stream.publish(said("L2", "renshe", "社保卡补办"))
            assert await waiting is not None
            return await store.get_draft("1700.5")
        finally:
            await store.close()
            await stream.close()

    kept = asyncio.run(keep_second_listen())
    assert kept is not None and kept["seat"] == "renshe" and kept["caller"] == "13900001111"
    # now hotline call prints the stored draft (without the caller's number)
    shown = asyncio.run(fetch_draft(config, "1700.5", wait_s=1.0, since=began))
    assert shown is not None and shown["seat"] == "renshe" and "caller" not in shown
