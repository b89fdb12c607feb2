"""The call event stream: one Redis Stream (``hotline:calls:events``), one typed client.

Producers (the AGI ``ivr`` handler, the speech service, the AMI bridge) call
:meth:`CallStream.emit` (background, never raises, never holds a call) or
:meth:`CallStream.publish`.  Consumers (the record keeper, ``hotline call``, later the
wallboard and QA) run a :class:`StreamConsumer` in their own consumer group:

* a consumer that stops and starts again first re-reads what it was given but had not
  acknowledged, then goes on from the group's position: nothing is lost;
* an entry that is not a :class:`hotline.call.CallEvent` is refused with one log line and
  acknowledged, and the consumer goes on;
* a handler that fails leaves its entry pending: it is retried at the next start;
* a consumer that died (or hangs) does not keep its entries: entries pending longer than
  ``calls.claim_idle_s`` in any consumer of the group are claimed (``XAUTOCLAIM``) by a live
  one and handled there (handlers apply each entry id once, so a slow consumer's entry
  handled twice is harmless);
* one-off readers (the draft keeper, ``hotline call``) look for one event from a point in
  time with :meth:`CallStream.find` (``XREAD``, no group, nothing acknowledged);
* the stream is bounded: ``XADD MAXLEN ~ calls.stream_maxlen``, and entries older than
  ``calls.retention_days`` are trimmed (``XTRIM MINID``) by the consumers.

Redis down: producers log and drop (the call goes on); consumers retry with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hotline.call import EVENTS_STREAM, CallEvent, MalformedEvent

if TYPE_CHECKING:
    from hotline.config import HotlineConfig

log = logging.getLogger("calls.stream")

PUBLISH_TIMEOUT_S = 0.5
RECONNECT_S = (0.5, 1.0, 2.0, 5.0)
TRIM_EVERY_S = 300.0
_BACKGROUND: set[asyncio.Task[object]] = set()

Handler = Callable[[CallEvent, str], Awaitable[None]]
"""Gets the event and its stream entry id (to apply each entry once)."""


class CallStream:
    """Producer side, and what consumers share (the Redis connection, key and bounds)."""

    def __init__(
        self,
        redis: Any,
        key: str = EVENTS_STREAM,
        maxlen: int = 200_000,
        retention_s: float = 7 * 86400,
        timeout_s: float = PUBLISH_TIMEOUT_S,
        claim_idle_s: float = 60.0,
    ) -> None:
        self.redis = redis
        self.claim_idle_s = claim_idle_s
        self.key = key
        self.maxlen = maxlen
        self.retention_s = retention_s
        self.timeout_s = timeout_s
        self.published = 0
        self.dropped = 0

    @classmethod
    def from_config(cls, config: HotlineConfig, **redis_options: Any) -> CallStream:
        """The stream on ``config.redis`` with the bounds of ``config.calls``."""
        from redis.asyncio import Redis

        options = {"socket_connect_timeout": PUBLISH_TIMEOUT_S, **redis_options}
        redis = Redis(**{**config.redis.client_kwargs(), **options})  # type: ignore[arg-type]
        c = config.calls
        return cls(
            redis,
            maxlen=c.stream_maxlen,
            retention_s=c.retention_days * 86400,
            claim_idle_s=c.claim_idle_s,
        )

    async def close(self) -> None:
        await asyncio.gather(*_BACKGROUND, return_exceptions=True)
        await self.redis.aclose()

    async def publish(self, event: CallEvent) -> str | None:
        """Append ``event``; its stream id, or ``None`` when Redis failed (logged)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                entry = await self.redis.xadd(
                    self.key, event.to_fields(), maxlen=self.maxlen, approximate=True
                )
        except Exception as exc:  # fail open: the call never depends on the stream
            self.dropped += 1
            log.warning("call %s: %s event not written to the stream (%s: %s)",
                        event.call_id, event.kind, type(exc).__name__, exc)  # fmt: skip
            return None
        self.published += 1
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def emit(self, event: CallEvent) -> None:
        """:meth:`publish` in the background (the caller does not wait)."""
        task = asyncio.get_running_loop().create_task(self.publish(event))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def find(
        self,
        match: Callable[[CallEvent], bool],
        since: float,
        wait_s: float,
        batch: int = 100,
    ) -> CallEvent | None:
        """The first event written at or after unix time ``since`` that ``match``es, waiting
        at most ``wait_s`` for it (``0``: only what is there now); ``None`` when none came.
        Malformed entries are skipped; Redis errors are raised."""
        last = f"{max(0, int(since * 1000) - 1)}-{2**64 - 1}"
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            remaining = deadline - time.monotonic()
            block = int(min(remaining, 1.0) * 1000) if remaining > 0 else None
            reply = await self.redis.xread(
                {self.key: last}, count=batch, block=block if block else None
            )
            entries = reply[0][1] if reply else []
            for entry_id, fields in entries:
                last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                try:
                    event = CallEvent.from_fields(fields)
                except MalformedEvent:
                    continue
                if match(event):
                    return event
            if not entries and time.monotonic() >= deadline:
                return None

    async def trim(self, now: float | None = None) -> int:
        """Drop entries older than the retention; how many went."""
        oldest_ms = int(((now or time.time()) - self.retention_s) * 1000)
        return int(await self.redis.xtrim(self.key, minid=f"{oldest_ms}-0", approximate=False))


class StreamConsumer:
    """One consumer (``name``) of a consumer group (``group``): hands each event to
    ``handler`` and acknowledges it once handled."""

    def __init__(
        self,
        stream: CallStream,
        group: str,
        name: str,
        handler: Handler,
        *,
        batch: int = 100,
        block_ms: int = 1000,
    ) -> None:
        self.stream = stream
        self.group = group
        self.name = name
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.handled = 0
        self.refused = 0
        self.failed = 0
        self.connected = False
        self.claimed = 0
        self._backlog = True
        self._trimmed_at = 0.0
        self._claimed_at = 0.0

    async def ensure_group(self) -> None:
        """Create the group (from the stream's start) unless it exists."""
        try:
            await self.stream.redis.xgroup_create(
                self.stream.key, self.group, id="0", mkstream=True
            )
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def poll(self) -> int:
        """Read and handle one batch; how many entries were read.  First the entries this
        consumer was given before and never acknowledged (a restart), then new ones."""
        start = "0" if self._backlog else ">"
        reply = await self.stream.redis.xreadgroup(
            self.group,
            self.name,
            {self.stream.key: start},
            count=self.batch,
            block=None if self._backlog else self.block_ms,
        )
        entries = reply[0][1] if reply else []
        if self._backlog and not entries:
            self._backlog = False
        for entry_id, fields in entries:
            await self._handle(entry_id, fields)
        if self._backlog and entries and all(not f for _, f in entries):
            self._backlog = False  # only trimmed entries left pending
        if not self._backlog:
            return len(entries) + await self.claim_stale()
        return len(entries)

    async def claim_stale(self, now: float | None = None) -> int:
        """Take over and handle the group's entries pending longer than
        ``stream.claim_idle_s`` (a consumer that died or hangs); how many were claimed.
        Runs at most every ``claim_idle_s / 2`` seconds."""
        idle_s = self.stream.claim_idle_s
        now = time.monotonic() if now is None else now
        if now - self._claimed_at < idle_s / 2:
            return 0
        self._claimed_at = now
        start, total = "0-0", 0
        while True:
            reply = await self.stream.redis.xautoclaim(
                self.stream.key,
                self.group,
                self.name,
                min_idle_time=int(idle_s * 1000),
                start_id=start,
                count=self.batch,
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            entries = [(eid, f) for eid, f in reply[1] if eid is not None]
            if entries:
                log.info("%s/%s: consumer %s claimed %d stale entries", self.stream.key,
                         self.group, self.name, len(entries))  # fmt: skip
            for entry_id, fields in entries:
                await self._handle(entry_id, fields)
            total += len(entries)
            self.claimed += len(entries)
            if start == "0-0":
                return total

    async def _handle(self, entry_id: bytes | str, fields: Any) -> None:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        redis = self.stream.redis
        if not fields:  # pending, but trimmed from the stream meanwhile
            await redis.xack(self.stream.key, self.group, eid)
            return
        try:
            event = CallEvent.from_fields(fields)
        except MalformedEvent as exc:
            self.refused += 1
            log.warning("%s/%s: refused malformed event %s: %s", self.stream.key, self.group,
                        eid, exc)  # fmt: skip
            await redis.xack(self.stream.key, self.group, eid)
            return
        try:
            await self.handler(event, eid)
        except Exception:
            self.failed += 1
            log.exception("%s/%s: event %s (%s, call %s) not handled; left pending",
                          self.stream.key, self.group, eid, event.kind, event.call_id)  # fmt: skip
            if self._backlog:
                self._backlog = False  # do not spin on it: retried at the next start
            return
        self.handled += 1
        await redis.xack(self.stream.key, self.group, eid)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; Redis failures are retried with back-off."""
        attempt = 0
        while stop is None or not stop.is_set():
            try:
                if not self.connected:
                    await self.ensure_group()
                    self.connected, attempt, self._backlog = True, 0, True
                    log.info("%s/%s: consumer %s reading", self.stream.key, self.group, self.name)
                await self.poll()
                await self._maybe_trim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                delay = RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)]
                attempt += 1
                log.warning("%s/%s: Redis unavailable (%s); retry in %.1f s", self.stream.key,
                            self.group, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def _maybe_trim(self) -> None:
        now = time.monotonic()
        if now - self._trimmed_at >= TRIM_EVERY_S:
            self._trimmed_at = now
            gone = await self.stream.trim()
            if gone:
                log.info("%s: %d events past retention trimmed", self.stream.key, gone)
