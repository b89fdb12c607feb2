"""The asyncio FastAGI server: many calls on one event loop (uvloop when installed).

``agi://host:port/<route>`` runs ``agi_scripts.handlers.<route>.handle(session, app)``.  The
connection is an :class:`asyncio.Protocol` (no stream objects: fewer allocations and
wake-ups per command, see bench/README.md).  When a handler ends, for whatever reason, the
socket is closed and AGI() returns to the dialplan; a handler that failed has set no
``HOTLINE_ROUTE``, so the dialplan sends the caller to the general seat (fail open).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from acd.interface import Router
from acd.queues import StaticQueueRouter
from agi_scripts.errors import AgiError, AgiHangup, AgiProtocolError, AgiTimeout
from agi_scripts.protocol import HANGUP, ReplyParser, parse_env
from agi_scripts.services import (
    AcdRedis,
    CallerRules,
    CallNotices,
    DraftKeeper,
    EventSink,
    FlowFactory,
    HarassmentFlags,
    KbOffers,
    Listener,
)
from agi_scripts.session import DEFAULT_TIMEOUT_S, AgiSession
from hotline.config import HotlineConfig
from hotline.peers import Peers, peer_host

log = logging.getLogger("agi_scripts.server")

MAX_ENV_BYTES = 64 * 1024
"""An environment block larger than this is not Asterisk: the connection is dropped."""
MAX_LINE_BYTES = 64 * 1024
ENV_TIMEOUT_S = 10.0
SWEEP_S = 0.25
"""How often command deadlines and silent new connections are checked (one timer per server,
not one per command)."""

Handler = Callable[[AgiSession, "AgiApp"], Awaitable[None]]


class HandlerModule(Protocol):
    async def handle(self, session: AgiSession, app: AgiApp) -> None: ...


@dataclass
class Stats:
    """Counters the server logs at exit and on request (``stats()``)."""

    sessions: int = 0
    active: int = 0
    completed: int = 0
    hangups: int = 0
    failed: int = 0
    timeouts: int = 0
    unknown_route: int = 0
    handed_back: int = 0
    """Calls still in the IVR when the server stopped (their dialplan falls back)."""
    commands: int = 0
    refused_peers: int = 0
    """Connections from an address outside ``agi.allow_from`` (closed unread)."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class AgiApp:
    """What handlers share: the validated config, the ACD router, and seams for other parts."""

    config: HotlineConfig | None
    router: Router | None = None
    handlers: dict[str, Handler] = field(default_factory=dict)
    command_timeout_s: float = DEFAULT_TIMEOUT_S
    listener: Listener | None = None
    """Speech (``agi_scripts.speech_listen.SpeechListener``); ``None``: nobody listens."""
    policy: CallerRules | None = None
    """Caller rules (``callers.policy.CallerPolicy``); ``None``: every caller is normal."""
    throttle: HarassmentFlags | None = None
    """Where agents' harassment flags go (the policy's throttle)."""
    drafts: DraftKeeper | None = None
    """Stores each listen's draft in the ticket store."""
    events: EventSink | None = None
    """The call event stream (``calls.stream.CallStream``)."""
    kb: KbOffers | None = None
    """Knowledge-base answers for callers (``kb.phone.CallerOffers``, seats in
    ``kb.self_service`` only); ``None``: callers always reach an agent."""
    notices: CallNotices | None = None
    """Incident notices in their window (``notices.phone.CallerNotices``); ``None``: none."""
    flow: FlowFactory | None = None
    """The call flow (default ``ivr.flow.call_flow``; tests put a stand-in here)."""
    acd_redis: AcdRedis | None = None
    """The ACD's Redis (``redis.asyncio``) for agents' feature codes (``agent_codes``):
    state read, commands sent to ``acd:commands``; ``None``: the agent hears it is down."""

    def __post_init__(self) -> None:
        if self.router is None and self.config is not None:
            cfg = self.config
            self.router = StaticQueueRouter([s.id for s in cfg.seats], cfg.general_seat.id)


def load_handlers(package: str = "agi_scripts.handlers") -> dict[str, Handler]:
    """Import every module of the handlers package; route name = module name."""
    pkg = importlib.import_module(package)
    found: dict[str, Handler] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        handle = getattr(module, "handle", None)
        if not callable(handle):
            raise TypeError(f"handler module {module.__name__} has no handle(session, app)")
        found[info.name] = handle
    return found


class AgiConnection(asyncio.Protocol):
    """One TCP connection from Asterisk = one call in AGI."""

    __slots__ = (
        "_buf",
        "_parser",
        "_server",
        "_transport",
        "opened_at",
        "session",
        "shutting_down",
        "task",
    )

    def __init__(self, server: AgiServer) -> None:
        self._server = server
        self._buf = b""
        self._parser = ReplyParser()
        self._transport: asyncio.Transport | None = None
        self.opened_at = server.loop.time()
        self.shutting_down = False
        self.session: AgiSession | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass: no isinstance check.
        peer = peer_host(transport.get_extra_info("peername"))
        if not self._server.peers.allows(peer):
            self._server.stats.refused_peers += 1
            log.warning("FastAGI connection from %s refused: not in agi.allow_from", peer)
            transport.close()
            return
        self._transport = transport  # type: ignore[assignment]
        self._server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self.session is None:
            end = buf.find(b"\n\n")
            if end < 0:
                if len(buf) > MAX_ENV_BYTES:
                    log.warning("dropping a connection: no AGI environment in %d bytes", len(buf))
                    self._abort()
                    return
                self._buf = buf
                return
            self._start(buf[: end + 1])
            buf = buf[end + 2 :]
        session = self.session
        assert session is not None
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl].decode("utf-8", "replace")
            start = nl + 1
            try:
                event = self._parser.feed(line)
                if event is None:
                    continue
                if event is HANGUP:
                    session.feed_hangup()
                else:
                    session.feed_reply(event)  # type: ignore[arg-type]
            except AgiProtocolError as exc:
                log.warning("call %s: %s; ending the AGI session", session.call_id, exc)
                self._abort()
                return
        rest = buf[start:]
        if len(rest) > MAX_LINE_BYTES:
            log.warning("call %s: reply line too long; ending the session", session.call_id)
            self._abort()
            return
        self._buf = rest

    def _start(self, block: bytes) -> None:
        env = parse_env(block)
        server = self._server
        assert self._transport is not None
        self.session = AgiSession(
            env, self._transport, default_timeout_s=server.app.command_timeout_s, loop=server.loop
        )
        if env.anomalies:
            log.warning(
                "call %s: odd lines in the AGI environment ignored: %s",
                self.session.call_id,
                "; ".join(env.anomalies[:5]),
            )
        self.task = server.loop.create_task(self._run(self.session))

    async def _run(self, session: AgiSession) -> None:
        server = self._server
        stats = server.stats
        stats.sessions += 1
        stats.active += 1
        route = session.env.route
        started = time.monotonic()
        outcome = "done"
        try:
            handler = server.app.handlers.get(route)
            if handler is None:
                outcome = "unknown-route"
                stats.unknown_route += 1
                log.warning("call %s: no AGI handler for route %r", session.call_id, route)
                return
            await handler(session, server.app)
            stats.completed += 1
        except AgiHangup:
            if self.shutting_down:
                outcome = "handed-back"  # server stopping: the dialplan takes the call
                stats.handed_back += 1
            else:
                outcome = "hangup"
                stats.hangups += 1
        except AgiTimeout as exc:
            outcome = "timeout"
            stats.timeouts += 1
            log.warning("call %s: %s; handing the call back to the dialplan", session.call_id, exc)
        except asyncio.CancelledError:
            outcome = "cancelled"
            stats.failed += 1
            raise
        except AgiError as exc:
            outcome = "agi-error"
            stats.failed += 1
            log.warning("call %s: AGI error in %s: %s", session.call_id, route, exc)
        except Exception:
            outcome = "error"
            stats.failed += 1
            log.exception("call %s: handler %s failed; dialplan falls back", session.call_id, route)
        finally:
            stats.active -= 1
            stats.commands += session.commands
            log.info(
                "call %s route=%s outcome=%s commands=%d ms=%d",
                session.call_id,
                route,
                outcome,
                session.commands,
                (time.monotonic() - started) * 1000,
            )
            self._close()

    def check(self, now: float) -> None:
        """Called by the server's sweep: enforce the env and command time limits."""
        if self.session is not None:
            self.session.check_deadline(now)
        elif now - self.opened_at > ENV_TIMEOUT_S:
            log.warning("dropping a connection that sent no AGI environment in %g s", ENV_TIMEOUT_S)
            self._abort()

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        if self.session is not None:
            self.session.feed_closed()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.feed_closed()
        self._server._connections.discard(self)


class AgiServer:
    """Listens for FastAGI connections and runs one handler task per call."""

    def __init__(self, app: AgiApp, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.app = app
        self.stats = Stats()
        self.loop = loop or asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._connections: set[AgiConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.sweep_s = SWEEP_S
        cfg = app.config
        self.peers = cfg.agi.allowed_peers if cfg is not None else Peers.of("127.0.0.1")
        """Who may connect (``agi.allow_from``; loopback only without a config)."""

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self._connections):
            conn.check(now)
        self._sweeper = self.loop.call_later(self.sweep_s, self._sweep)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Start listening; returns the bound address (``port=0`` picks a free port)."""
        self._server = await self.loop.create_server(
            lambda: AgiConnection(self), host, port, reuse_address=True, backlog=1024
        )
        self._sweeper = self.loop.call_later(self.sweep_s, self._sweep)
        sockname = self._server.sockets[0].getsockname()
        log.info("FastAGI listening on %s:%d routes=%s", sockname[0], sockname[1],
                 sorted(self.app.handlers))  # fmt: skip
        return sockname[0], sockname[1]

    @property
    def active_tasks(self) -> list[asyncio.Task[None]]:
        return [c.task for c in self._connections if c.task is not None and not c.task.done()]

    async def stop(self, drain_s: float = 5.0) -> None:
        """Stop accepting; give calls in the IVR ``drain_s`` to finish, then close them (their
        dialplan falls back to the general seat)."""
        if self._server is not None:
            self._server.close()
        tasks = self.active_tasks
        if tasks:
            log.info("waiting up to %g s for %d calls in the IVR", drain_s, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=drain_s)
            for conn in list(self._connections):
                if conn.task in pending:
                    conn.shutting_down = True
                    conn._abort()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        for conn in list(self._connections):
            conn._close()
        if self._server is not None:
            await self._server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
        log.info("FastAGI stopped; stats %s", self.stats.as_dict())
