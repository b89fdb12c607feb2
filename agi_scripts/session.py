"""One FastAGI session: send a command, await its reply, typed helpers on top.

The session does not own the socket; :class:`agi_scripts.server.AgiConnection` feeds it
replies (:meth:`AgiSession.feed_reply`), hang-ups and the socket's end.  One command is in
flight at a time (AGI has no pipelining).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agi_scripts.errors import AgiArgumentError, AgiHangup, AgiProtocolError, AgiTimeout
from agi_scripts.protocol import AgiEnv, AgiReply, build_command, clean_text, reply_error

log = logging.getLogger("agi_scripts.session")

DEFAULT_TIMEOUT_S = 10.0
"""A command that does not wait on the caller (SET/GET VARIABLE …) answers in milliseconds."""
MEDIA_TIMEOUT_S = 600.0
"""Upper bound for a prompt to play (STREAM FILE / EXEC Playback)."""
HANGUP_GRACE_S = 2.0
"""After ``HANGUP``, how long we still wait for the reply to a command already sent."""
_VARNAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_()")


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...


class AgiSession:
    """Typed AGI commands for one call.  Raises :class:`~agi_scripts.errors.AgiHangup`
    once the caller is gone; every argument is quoted by :func:`protocol.build_command`."""

    __slots__ = (
        "_closed",
        "_deadline",
        "_failed_prompt",
        "_grace",
        "_hungup",
        "_limit",
        "_loop",
        "_pending",
        "_pending_cmd",
        "_transport",
        "call_id",
        "commands",
        "default_timeout_s",
        "env",
    )

    def __init__(
        self,
        env: AgiEnv,
        transport: Transport,
        *,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.env = env
        self.call_id = env.get("agi_uniqueid") or "?"
        self.default_timeout_s = default_timeout_s
        self.commands = 0
        self._transport = transport
        self._loop = loop or asyncio.get_running_loop()
        self._pending: asyncio.Future[AgiReply] | None = None
        self._pending_cmd = ""
        self._deadline = 0.0
        self._limit = 0.0
        self._grace: asyncio.TimerHandle | None = None
        self._hungup = False
        self._closed = False
        self._failed_prompt: str | None = None

    # ---- fed by the connection --------------------------------------------------------
    @property
    def hung_up(self) -> bool:
        return self._hungup or self._closed

    @property
    def busy(self) -> bool:
        """A command was sent and its reply has not come yet."""
        return self._pending is not None and not self._pending.done()

    def feed_reply(self, reply: AgiReply) -> None:
        fut = self._pending
        if fut is None or fut.done():
            # Asterisk only writes after a command; anything else means we are out of step.
            raise AgiProtocolError(f"reply with no command waiting: {reply.text[:120]!r}")
        fut.set_result(reply)

    def feed_hangup(self) -> None:
        """Asterisk sent ``HANGUP``: the reply to a command in flight may still come."""
        self._hungup = True
        fut = self._pending
        if fut is not None and not fut.done() and self._grace is None:
            self._grace = self._loop.call_later(HANGUP_GRACE_S, self._fail_pending, AgiHangup)

    def feed_closed(self) -> None:
        """The socket is gone (Asterisk closed it, or we did)."""
        self._closed = True
        self._fail_pending(AgiHangup)

    def _fail_pending(self, exc_type: type[Exception], message: str = "caller hung up") -> None:
        fut = self._pending
        if fut is not None and not fut.done():
            fut.set_exception(exc_type(message))

    # ---- the one way to talk to Asterisk ----------------------------------------------
    async def command(self, verb: str, *args: object, timeout: float | None = None) -> AgiReply:
        """Send ``VERB "arg" …``, wait for the reply; typed error on 510/511/520/5xx."""
        if self._closed or self._hungup:
            raise AgiHangup(f"caller hung up before {verb}")
        if self._pending is not None:
            raise RuntimeError("one AGI command at a time")
        data = build_command(verb, *args)
        fut: asyncio.Future[AgiReply] = self._loop.create_future()
        self._pending = fut
        self._pending_cmd = verb
        # No timer per command (costly on uvloop): the server sweeps deadlines periodically.
        self._limit = self.default_timeout_s if timeout is None else timeout
        self._deadline = self._loop.time() + self._limit
        self.commands += 1
        try:
            self._transport.write(data)
            reply = await fut
        finally:
            self._pending = None
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
        err = reply_error(verb, reply)
        if err is not None:
            raise err
        if self._failed_prompt is not None:
            # The previous prompt answered -1 but the caller is still here: a real failure.
            log.warning("call %s: prompt %s could not be played", self.call_id, self._failed_prompt)
            self._failed_prompt = None
        return reply

    def check_deadline(self, now: float) -> None:
        """Fail the command in flight with :class:`AgiTimeout` if its time is up."""
        fut = self._pending
        if fut is not None and not fut.done() and now >= self._deadline:
            msg = f"no reply to {self._pending_cmd} within {self._limit:g} s"
            fut.set_exception(AgiTimeout(msg))

    # ---- typed helpers ----------------------------------------------------------------
    async def answer(self) -> None:
        await self.command("ANSWER")

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        """Play ``prompt`` (no extension); the key that stopped it, or ``None``."""
        reply = await self.command("STREAM FILE", prompt, escape_digits, timeout=MEDIA_TIMEOUT_S)
        code = reply.result_int
        if code > 0:
            return chr(code)
        if code < 0:
            # -1: the file could not be played, or the caller hung up (HANGUP follows).
            if self.hung_up:
                raise AgiHangup("caller hung up during a prompt")
            self._failed_prompt = prompt
        return None

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """One key within ``timeout_ms`` (``-1``: forever), or ``None`` on time-out."""
        limit = MEDIA_TIMEOUT_S if timeout_ms < 0 else timeout_ms / 1000 + DEFAULT_TIMEOUT_S
        reply = await self.command("WAIT FOR DIGIT", int(timeout_ms), timeout=limit)
        code = reply.result_int
        if code < 0:
            raise AgiHangup("caller hung up while we waited for a key")
        return chr(code) if code > 0 else None

    async def get_data(self, prompt: str, timeout_ms: int = 5000, max_digits: int = 1) -> str:
        """Play ``prompt`` and read up to ``max_digits`` keys (``""`` if none)."""
        limit = MEDIA_TIMEOUT_S + timeout_ms / 1000 * max(1, max_digits)
        reply = await self.command(
            "GET DATA", prompt, int(timeout_ms), int(max_digits), timeout=limit
        )
        if reply.result == "-1":
            raise AgiHangup("caller hung up during GET DATA")
        return reply.result

    async def set_variable(self, name: str, value: object) -> None:
        """Set a channel variable; the value is cleaned of CR/LF/NUL (it may hold caller
        data) and capped at 1 KiB."""
        _check_name(name)
        await self.command("SET VARIABLE", name, clean_text(value, 1024))

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or dialplan function value; ``None`` when not set."""
        _check_name(name)
        reply = await self.command("GET VARIABLE", name)
        if reply.result != "1":
            return None
        return reply.data or ""

    async def exec(self, app: str, *args: object) -> int:
        """Run a dialplan application; its arguments are joined with ``,``.  An argument that
        contains ``,`` is refused: it would become two arguments of the application."""
        if not app.isascii() or not app.isalnum():
            raise AgiArgumentError(f"not an application name: {app[:40]!r}")
        parts = [str(a) for a in args]
        if any("," in p for p in parts):
            raise AgiArgumentError(f"',' inside an argument of {app}")
        reply = await self.command("EXEC", app, ",".join(parts), timeout=MEDIA_TIMEOUT_S)
        return reply.result_int

    async def verbose(self, message: str, level: int = 1) -> None:
        """Write to Asterisk's verbose log (text cleaned, 256 characters at most)."""
        await self.command("VERBOSE", clean_text(message, 256), int(level))

    async def hangup(self) -> None:
        """Hang the channel up (the dialplan will not continue)."""
        await self.command("HANGUP")


def _check_name(name: str) -> None:
    if not name or len(name) > 80 or not set(name) <= _VARNAME_CHARS:
        raise AgiArgumentError(f"not a channel variable name: {name[:40]!r}")
