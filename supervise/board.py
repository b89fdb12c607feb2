"""The wallboard's one server-side subscriber and its fan-out to every open screen.

:class:`Board` seeds a :class:`supervise.live.LiveModel` with today's call records, then
reads the call event stream with ``XREAD`` (no consumer group: it acknowledges nothing and
holds nothing back from other readers) from the day's start too: the records may lag the
stream (the record keeper down or slow), and an event both in the records and in the stream
is applied once (the model counts transitions only).  The records cover what the bounded
stream no longer holds.  Once a
second it asks the ACD's Redis hashes for the agents' states (when the ACD routes), and once
a minute it reads the last hour's drafts for the hotspot.

Screens subscribe to a queue holding the latest message only: at most one snapshot per
``supervise.push_interval_ms`` is built, serialised once and handed to every queue.  Reads
of Redis and SQLite do not depend on the number of screens.

New alerts are appended to the Redis Stream ``hotline:supervise:alerts`` (an event for other
services) and shown on the screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hotline.call import EVENTS_STREAM, CallEvent, MalformedEvent
from supervise import alerts as al
from supervise.live import LiveModel
from supervise.sources import call_records, drafts_in

log = logging.getLogger("supervise.board")

ALERTS_STREAM = "hotline:supervise:alerts"
ALERTS_MAXLEN = 10_000
ACD_AGENT_KEY = "acd:a:{agent}"
"""The ACD's agent hash (``acd/lua.py``): ``st`` state, ``rs`` reason, ``call``."""
ACD_EVERY_S = 1.0
HOTSPOT_EVERY_S = 60.0
RECONNECT_S = (0.5, 1.0, 2.0, 5.0)
QUEUE_MAX = 1


def sse_message(kind: str, payload: dict[str, Any]) -> bytes:
    """One Server-Sent Events message, encoded once for every screen."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


class Board:
    """One per console process; see the module docstring."""

    def __init__(
        self,
        model: LiveModel,
        settings: Any,
        *,
        redis: Callable[[], Any],
        calls_path: str | Path | None = None,
        tickets_path: str | Path | None = None,
        stream_key: str = EVENTS_STREAM,
        observe: Callable[[list[Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.settings = settings
        self._make_redis = redis
        self.redis: Any = None
        self.calls_path = calls_path
        self.tickets_path = tickets_path
        self.stream_key = stream_key
        self.observe = observe
        self.clock = clock
        self.interval_s = settings.push_interval_ms / 1000
        self._subs: set[asyncio.Queue[bytes]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._message = b""
        self.alerts: dict[tuple[str, str], al.Alert] = {}
        self.hotspots: list[al.Alert] = []
        self.connected = False
        self.read_errors = 0
        self.refused = 0
        self.alerts_published = 0
        self.alerts_dropped = 0
        self.pushes = 0
        self.seeded = 0

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Board:
        """The board for ``config``: its seats, agents, Redis, call records and drafts
        (``kwargs`` override any of them, e.g. ``redis=`` a client factory)."""
        from redis.asyncio import Redis

        s = config.supervise
        model = LiveModel(
            {seat.id: seat.name for seat in config.seats},
            {a.id: a.name for a in config.agents},
            service_level_s=s.service_level_s,
            timezone=config.business_hours.timezone,
        )
        tickets = config.tickets.path if config.tickets.backend == "sqlite" else None
        options: dict[str, Any] = {
            "redis": lambda: Redis(**config.redis.client_kwargs(), socket_connect_timeout=2.0),  # type: ignore[arg-type]
            "calls_path": config.calls.path,
            "tickets_path": tickets,
        }
        return cls(model, s, **(options | kwargs))

    # ---- screens ------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[bytes]:
        """A screen's queue; it gets the current snapshot at once, then each new one."""
        q: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        q.put_nowait(self._message or self._build())
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes]) -> None:
        self._subs.discard(q)

    @property
    def screens(self) -> int:
        return len(self._subs)

    def snapshot(self) -> dict[str, Any]:
        """The figures with the active alerts (what a screen shows)."""
        snap = self.model.snapshot(self.clock())
        live = al.live_alerts(snap, self.settings)
        current = {(a.kind, a.key): a for a in [*live, *self.hotspots]}
        for key, alert in current.items():
            if key not in self.alerts:
                self._publish_alert(alert)
        self.alerts = current
        snap["alerts"] = [a.to_json() for a in current.values()]
        snap["target"] = self.settings.service_level_target
        snap["screens"] = self.screens
        snap["connected"] = self.connected
        return snap

    def _build(self) -> bytes:
        self._message = sse_message("board", self.snapshot())
        return self._message

    def _push(self) -> None:
        message = self._build()
        for q in list(self._subs):
            if q.full():
                q.get_nowait()  # only the latest matters
            q.put_nowait(message)
        self.pushes += 1

    # ---- running ------------------------------------------------------------------------
    async def start(self) -> None:
        """Seed from the call records, then run the readers and the pusher."""
        self.redis = self._make_redis()
        start = self.clock()
        midnight = datetime.fromtimestamp(start, self.model.zone).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        if self.calls_path is not None:
            try:
                records = await asyncio.to_thread(
                    call_records, self.calls_path, midnight.timestamp(), start + 1
                )
                self.seeded = self.model.seed(records)
            except Exception as exc:  # the board runs on from the stream alone
                log.error("wallboard: call records not read (%s: %s)", type(exc).__name__, exc)
        first = f"{int(midnight.timestamp() * 1000)}-0"  # what the records may lag behind
        self._tasks = [
            asyncio.create_task(self._read(first)),
            asyncio.create_task(self._pusher()),
            asyncio.create_task(self._acd()),
            asyncio.create_task(self._hotspots()),
        ]
        log.info("wallboard: %d call records of today seeded", self.seeded)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def _read(self, last: str) -> None:
        attempt = 0
        while True:
            try:
                reply = await self.redis.xread({self.stream_key: last}, count=500, block=1000)
                self.connected, attempt = True, 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                self.read_errors += 1
                delay = RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)]
                attempt += 1
                log.warning("wallboard: Redis unavailable (%s); retry in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            for entry_id, fields in reply[0][1] if reply else []:
                last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                try:
                    event = CallEvent.from_fields(fields)
                except MalformedEvent:
                    self.refused += 1
                    continue
                facts = self.model.apply(event, last)
                if self.observe is not None and facts:
                    self.observe(facts)
                self._changed.set()

    async def _pusher(self) -> None:
        """One snapshot per interval when something changed, else one a second (times on
        the screens go on)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
            self._changed.clear()
            self._push()
            await asyncio.sleep(self.interval_s)

    async def _acd(self) -> None:
        """The ACD's agent states (only agents the ACD knows; nothing when it does not run)."""
        agents = list(self.model.agent_names)
        while agents:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for agent in agents:
                        pipe.hmget(ACD_AGENT_KEY.format(agent=agent), "st", "rs", "call")
                    replies = await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                replies = []
            now = self.clock()
            for agent, (st, rs, call) in zip(agents, replies, strict=False):
                if st is not None and self.model.agent_state(
                    agent, _text(st), _text(rs), _text(call), now
                ):
                    self._changed.set()
            await asyncio.sleep(ACD_EVERY_S)

    async def _hotspots(self) -> None:
        if self.tickets_path is None:
            return
        zone: ZoneInfo = self.model.zone
        while True:
            now = datetime.fromtimestamp(self.clock(), zone)
            try:
                windows = al.hotspot_windows(now, self.settings)
                rows = await asyncio.to_thread(drafts_in, self.tickets_path, windows)
                self.hotspots = al.hotspots(al.parse_rows(rows, zone), now, self.settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "wallboard: drafts not read for hotspots (%s: %s)", type(exc).__name__, exc
                )
            self._changed.set()
            await asyncio.sleep(HOTSPOT_EVERY_S)

    def _publish_alert(self, alert: al.Alert) -> None:
        """Append a new alert to ``ALERTS_STREAM`` in the background (never blocks a push)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.redis is None:
            return
        fields = {k: str(v) for k, v in alert.to_json().items()} | {"at": f"{self.clock():.3f}"}

        async def send() -> None:
            try:
                await self.redis.xadd(ALERTS_STREAM, fields, maxlen=ALERTS_MAXLEN, approximate=True)
                self.alerts_published += 1
            except Exception as exc:
                self.alerts_dropped += 1
                log.warning("wallboard: alert not published (%s)", exc)

        task = loop.create_task(send())
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
