"""The live speech service: Asterisk AudioSocket in, ticket drafts out (Redis).

Per call, the IVR (AGI) registers a *listen* in Redis, plays its prompt and runs
``AudioSocket(<listen uuid>,127.0.0.1:<port>)``.  Asterisk connects here and streams the
caller's audio (slin, 8 kHz, 20 ms frames).  This service

1. feeds the audio to a recogniser session (in a worker thread, never on the event loop),
2. watches for the end of speech (:mod:`speech.endpoint`) on the event loop,
3. at the end of speech sends an AudioSocket *hangup* and closes the socket, so
   ``AudioSocket()`` returns at once and the dialplan/AGI goes on — the caller never
   waits on recognition,
4. finishes recognition in the worker, runs ``speech.fields.extract`` (when present), writes
   the captured audio as a WAV file, stores the draft as JSON under
   ``hotline:draft:<call_id>`` (with a TTL) and PUBLISHes it on ``hotline:drafts``.

The AGI side bounds its wait with :func:`wait_for_draft`; if the service is down (see
:func:`speech_service_alive`), slow or broken, the call goes on by keypad.

AudioSocket protocol (Asterisk 22 res_audiosocket): 3-byte header ``kind, length (u16 big
endian)`` then the payload.  Kinds: 0x00 hangup, 0x01 UUID (16 bytes), 0x03 DTMF (1 ASCII
byte), 0x10 slin 8 kHz audio, 0xff error.  Asterisk ends ``AudioSocket()`` cleanly (return
0, the dialplan continues) on a hangup message or on socket closure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import struct
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from calls.stream import CallStream
from hotline.call import (
    ALIVE_KEY,
    DRAFT_CHANNEL,
    DRAFT_KEY,
    LISTEN_DRAFT_KEY,
    CallEvent,
    TicketDraft,
    decode_message,
    valid_id,
)
from hotline.peers import peer_host
from speech import audio as au
from speech.endpoint import EndpointConfig, EndpointDetector, EndReason

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from hotline.config import HotlineConfig
    from speech.recognizers import Recognizer, RecognizerSession

log = logging.getLogger("speech.service")

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
HANGUP_MESSAGE = bytes((KIND_HANGUP, 0, 0))

LISTEN_KEY = "hotline:speech:listen:{listen_id}"
DEFAULT_PORT = 4574


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket message."""
    if len(payload) > 0xFFFF:
        raise ValueError("AudioSocket payload longer than 65535 bytes")
    return struct.pack(">BH", kind, len(payload)) + payload


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    audio_dir: Path = Path("run/speech/audio")
    draft_ttl_s: int = 3600
    workers: int = 2
    """Recognition worker threads (and Whisper model replicas)."""
    silence_ms: int = 1500
    max_s: float = 20.0
    no_speech_s: float = 6.0
    first_message_s: float = 3.0
    """Close a connection that sends no UUID within this time."""
    feed_chunk_ms: int = 200
    """Audio is handed to the recogniser in chunks of this length."""

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceSettings:
        """Defaults, then ``HOTLINE_SPEECH_PORT`` / ``HOTLINE_SPEECH_AUDIO_DIR``, then overrides."""
        env: dict[str, Any] = {}
        if os.environ.get("HOTLINE_SPEECH_PORT"):
            env["port"] = int(os.environ["HOTLINE_SPEECH_PORT"])
        if os.environ.get("HOTLINE_SPEECH_AUDIO_DIR"):
            env["audio_dir"] = Path(os.environ["HOTLINE_SPEECH_AUDIO_DIR"])
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)


@dataclass(slots=True)
class Listen:
    """One AudioSocket connection: a caller speaking after a prompt."""

    listen_id: str
    call_id: str
    silence_ms: int
    max_s: float
    chunks: list[np.ndarray] = field(default_factory=list)
    ended_by: str = ""
    dtmf: str = ""
    closed_at: float = 0.0


# ---- helpers for the AGI side -----------------------------------------------------------
async def register_listen(
    redis: Redis,
    call_id: str,
    max_s: float = 20.0,
    silence_ms: int = 1500,
    ttl_s: int = 600,
    listen_id: str | None = None,
) -> str:
    """Announce a listen for ``call_id`` (``listen_id``: a UUID chosen by the caller, else a new
    one); return the UUID to pass to ``AudioSocket()``."""
    listen_id = str(uuid.UUID(listen_id)) if listen_id else str(uuid.uuid4())
    value = json.dumps({"call_id": call_id, "max_s": max_s, "silence_ms": silence_ms})
    await redis.set(LISTEN_KEY.format(listen_id=listen_id), value, ex=ttl_s)
    return listen_id


def audiosocket_args(listen_id: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
    """The argument string for ``EXEC AudioSocket`` (``<uuid>,<host>:<port>``)."""
    return f"{uuid.UUID(listen_id)},{host}:{port}"


async def speech_service_alive(redis: Redis) -> bool:
    """True while the service refreshes its heartbeat (every 2 s, 5 s expiry)."""
    try:
        return bool(await redis.exists(ALIVE_KEY))
    except Exception:
        return False


async def wait_for_draft(
    redis: Redis, call_id: str, timeout_s: float, listen_id: str | None = None
) -> dict[str, Any] | None:
    """The draft for ``call_id`` (and ``listen_id`` if given), or ``None`` after ``timeout_s``
    or on any Redis error: the caller then goes on by keypad.  Never raises."""
    key = DRAFT_KEY.format(call_id=call_id)

    def matches(raw: bytes | str | None) -> dict[str, Any] | None:
        draft = decode_message(raw)
        if draft is None or draft.get("call_id") != call_id:
            return None
        if listen_id is not None and draft.get("listen_id") != listen_id:
            return None
        return draft

    pubsub = None
    try:
        async with asyncio.timeout(timeout_s):
            pubsub = redis.pubsub()
            await pubsub.subscribe(DRAFT_CHANNEL)
            found = matches(await redis.get(key))
            if found is None and listen_id is not None:  # the latest is another listen's
                one = LISTEN_DRAFT_KEY.format(call_id=call_id, listen_id=listen_id)
                found = matches(await redis.get(one))
            while found is None:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    found = matches(msg["data"])
            return found
    except TimeoutError:
        return None
    except Exception as exc:  # Redis down or broken: fail open to the keypad
        log.warning("wait_for_draft %s: %s", call_id, exc)
        return None
    finally:
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


# ---- the service ------------------------------------------------------------------------
def _fields_extractor() -> Callable[[str, Any], Any]:
    """``speech.fields.extract`` (imported here, not at module load: it pulls in pypinyin).
    A broken import is an error, never a silent draft without fields."""
    from speech.fields import extract

    return extract


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SpeechService:
    """An asyncio AudioSocket server that turns caller speech into drafts in Redis."""

    def __init__(
        self,
        config: HotlineConfig,
        recognizer: Recognizer,
        redis: Redis | None,
        settings: ServiceSettings | None = None,
    ) -> None:
        self.config = config
        self.recognizer = recognizer
        self.redis = redis
        self.settings = settings or ServiceSettings()
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="speech")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._extract = _fields_extractor()
        self.drafts_published = 0
        self.events: CallStream | None = None
        if redis is not None:
            c = config.calls
            self.events = CallStream(
                redis, maxlen=c.stream_maxlen, retention_s=c.retention_days * 86400
            )
        self.peers = config.agi.allowed_peers
        """Who may connect: Asterisk's AudioSocket, from ``agi.allow_from`` (and loopback)."""
        self.refused_peers = 0

    async def start(self) -> None:
        s = self.settings
        s.audio_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_server(self._handle, s.host, s.port)
        self._heartbeat = asyncio.create_task(self._beat())
        log.info("speech service on %s:%d, engine %s", s.host, s.port, self.recognizer.name)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, release every open call (hangup + close), finish pending drafts."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            await _close(w)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.delete(ALIVE_KEY)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _beat(self) -> None:
        while True:
            if self.redis is not None:
                try:
                    await self.redis.set(ALIVE_KEY, str(os.getpid()), ex=5)
                except Exception as exc:
                    log.warning("heartbeat: %s", exc)
            await asyncio.sleep(2)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _lookup(self, listen_id: str) -> Listen:
        s = self.settings
        info: dict[str, Any] = {}
        if self.redis is not None:
            try:
                async with asyncio.timeout(self.config.redis.timeout_ms / 1000 * 4):
                    raw = await self.redis.get(LISTEN_KEY.format(listen_id=listen_id))
                if raw:
                    info = json.loads(raw)
            except Exception as exc:
                log.warning("listen %s: no registration (%s)", listen_id, exc)
        return Listen(
            listen_id=listen_id,
            call_id=str(info.get("call_id") or listen_id),
            silence_ms=int(info.get("silence_ms") or s.silence_ms),
            max_s=float(info.get("max_s") or s.max_s),
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_host(writer.get_extra_info("peername"))
        if not self.peers.allows(peer):
            self.refused_peers += 1
            log.warning("AudioSocket connection from %s refused: not in agi.allow_from", peer)
            await _close(writer)
            return
        self._writers.add(writer)
        try:
            try:
                async with asyncio.timeout(self.settings.first_message_s):
                    kind, payload = await _read_message(reader)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            if kind != KIND_UUID or len(payload) != 16:
                log.warning("first AudioSocket message is kind %#x, not a UUID", kind)
                writer.write(frame(KIND_ERROR))
                return
            listen = await self._lookup(str(uuid.UUID(bytes=payload)))
            await self._listen(listen, reader, writer)
        except Exception:
            log.exception("AudioSocket connection failed")
        finally:
            self._writers.discard(writer)
            await _close(writer)

    async def _listen(
        self, listen: Listen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        s = self.settings
        detector = EndpointDetector(
            EndpointConfig(
                sample_rate=au.TELEPHONE_RATE,
                silence_ms=listen.silence_ms,
                max_s=listen.max_s,
                no_speech_s=min(s.no_speech_s, listen.max_s),
            )
        )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        try:
            session: RecognizerSession | None = await self._run(
                self.recognizer.start, au.TELEPHONE_RATE
            )
        except Exception:
            log.exception("cannot start a recogniser session for %s", listen.call_id)
            session = None  # still capture, release the call and publish an empty draft
        feeder = asyncio.create_task(self._feed(session, queue))
        chunk_bytes = au.TELEPHONE_RATE * 2 * s.feed_chunk_ms // 1000
        pending = bytearray()
        try:
            while True:
                try:
                    kind, payload = await _read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    listen.ended_by = "hangup"
                    break
                if kind == KIND_AUDIO:
                    samples = au.slin16_to_int16(payload[: len(payload) // 2 * 2])
                    listen.chunks.append(samples)
                    pending += payload
                    if len(pending) >= chunk_bytes:
                        queue.put_nowait(bytes(pending))
                        pending.clear()
                    reason = detector.feed(samples)
                    if reason is not None:
                        listen.ended_by = reason.value
                        break
                elif kind == KIND_DTMF:
                    listen.dtmf = payload.decode("ascii", "replace")
                    listen.ended_by = "dtmf"
                    break
                elif kind == KIND_HANGUP:
                    listen.ended_by = "hangup"
                    break
                elif kind == KIND_ERROR:
                    listen.ended_by = "error"
                    break
        finally:
            # Release the call first: Asterisk leaves AudioSocket() and the IVR goes on.
            with contextlib.suppress(Exception):
                writer.write(HANGUP_MESSAGE)
            self._writers.discard(writer)
            await _close(writer)
            listen.closed_at = time.monotonic()
            if pending:
                queue.put_nowait(bytes(pending))
            queue.put_nowait(None)
        if listen.ended_by == EndReason.NO_SPEECH.value or not listen.chunks:
            feeder.cancel()
        task = asyncio.create_task(self._complete(listen, session, feeder))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feed(
        self, session: RecognizerSession | None, queue: asyncio.Queue[bytes | None]
    ) -> None:
        while (chunk := await queue.get()) is not None:
            if session is not None:
                await self._run(session.feed, chunk)

    async def _complete(
        self, listen: Listen, session: RecognizerSession | None, feeder: asyncio.Task[None]
    ) -> None:
        draft: dict[str, Any] = {
            "call_id": listen.call_id,
            "listen_id": listen.listen_id,
            "ended_by": listen.ended_by,
            "dtmf": listen.dtmf,
            "transcript": "",
            "fields": None,
            "error": None,
        }
        try:
            audio = np.concatenate(listen.chunks) if listen.chunks else np.zeros(0, np.int16)
            draft["audio_path"] = await self._run(self._save_audio, listen, audio)
            draft["audio_seconds"] = round(audio.size / au.TELEPHONE_RATE, 3)
            if session is None:
                draft["error"] = "recognition: no recogniser session"
            elif not feeder.cancelled():
                await feeder
                tr = await self._run(session.finish)
                draft.update(
                    transcript=tr.text,
                    confidence=tr.confidence,
                    engine=tr.engine,
                    decode_seconds=round(tr.decode_seconds, 3),
                    final_decode_seconds=round(tr.final_decode_seconds, 3),
                )
                if tr.text:
                    try:
                        fields = await self._run(self._extract, tr.text, self.config)
                        draft["fields"] = _jsonable(fields)
                    except Exception as exc:
                        log.exception("field extraction failed for %s", listen.call_id)
                        draft["error"] = f"fields: {exc}"
        except Exception as exc:  # the caller still gets an answer: an empty draft
            log.exception("recognition failed for %s", listen.call_id)
            draft["error"] = f"recognition: {exc}"
        draft["latency_s"] = round(time.monotonic() - listen.closed_at, 3)
        draft["created_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        await self._publish(draft)

    def _save_audio(self, listen: Listen, audio: np.ndarray) -> str:
        day = datetime.now(UTC).strftime("%Y%m%d")
        folder = self.settings.audio_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_SAFE.sub('_', listen.call_id)}-{listen.listen_id}.wav"
        au.write_wav(path, audio, au.TELEPHONE_RATE)
        return str(path.resolve())

    async def _publish(self, draft: dict[str, Any]) -> None:
        if self.redis is None:
            return
        text = json.dumps(draft, ensure_ascii=False)
        key = DRAFT_KEY.format(call_id=draft["call_id"])
        try:
            async with asyncio.timeout(2.0):
                await self.redis.set(key, text, ex=self.settings.draft_ttl_s)
                if draft.get("listen_id"):
                    one = LISTEN_DRAFT_KEY.format(
                        call_id=draft["call_id"], listen_id=draft["listen_id"]
                    )
                    await self.redis.set(one, text, ex=self.settings.draft_ttl_s)
                await self.redis.publish(DRAFT_CHANNEL, text)
            self.drafts_published += 1
        except Exception as exc:
            log.error("cannot store draft for %s: %s", draft["call_id"], exc)
        parsed = TicketDraft.parse(draft)
        if self.events is not None and parsed is not None and valid_id(parsed.call_id):
            data = {"draft": parsed.stored()}
            await self.events.publish(
                CallEvent("draft", parsed.call_id, time.time(), "speech", data=data)
            )


async def _read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind, length = struct.unpack(">BH", await reader.readexactly(3))
    payload = await reader.readexactly(length) if length else b""
    return kind, payload


async def _close(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    with contextlib.suppress(Exception):
        writer.close()
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
