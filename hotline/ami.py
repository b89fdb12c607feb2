"""A small asyncio Asterisk Manager Interface (AMI) client.

::

    client = await AmiClient.connect("127.0.0.1", 5038, "hotline", secret)
    events = client.subscribe()                     # every event from now on
    reply = await client.action("Originate", Channel="PJSIP/agent1001", Async="true", ...)
    members = await client.action_list("QueueStatus", Queue="seat_gjj")
    hung = await client.wait_for(lambda e: e.get("Event") == "Hangup", 10, queue=events)
    await client.close()

Messages are ``Key: Value`` lines ended by an empty line.  A key that repeats in one message
(``Output:`` of a ``Command``, ``ChanVariable:`` …) is joined with ``"\\n"``; a line without a
colon (legacy ``Response: Follows`` output) is appended to ``Output``.  The
``Asterisk Call Manager/x.y`` banner is read once and kept in :attr:`AmiClient.banner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

log = logging.getLogger(__name__)

Message = dict[str, str]
BANNER_PREFIX = "Asterisk Call Manager/"
CONSUMED_EVENTS: tuple[str, ...] = (
    "FullyBooted",
    "UserEvent",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "AgentRingNoAnswer",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "QueueMemberStatus",
    "BridgeEnter",
    "BridgeLeave",
    "DialBegin",
    "DialEnd",
    "DTMFEnd",
    "AGIExecStart",
    "Hangup",
)
"""The only events Asterisk sends the hotline's AMI user (manager.conf ``eventfilter``): what
the console, the call command, the tests and benches read.  Events raised before the
dialplan normalised the caller's number and name (``Newchannel``, ``VarSet``, ``Newexten``,
``NewCallerid`` …) never reach a consumer; a consumer needing another event adds it here.
Action replies (``QueueStatus``, ``Getvar``, ``Command`` …) are not events and pass."""
DISCONNECTED = "AmiDisconnected"
"""``Event`` of the last message every subscription receives when the connection is lost."""


class AmiError(Exception):
    """Login refused, connection lost, time-out, or an invalid action."""

    def __init__(self, message: str, response: Message | None = None) -> None:
        super().__init__(message)
        self.response = response or {}


def parse_message(block: str) -> Message:
    """Parse one AMI message (the lines before the empty line) into a dict."""
    msg: Message = {}
    for line in block.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            key, value = "Output", line
        else:
            value = value[1:] if value.startswith(" ") else value
        msg[key] = f"{msg[key]}\n{value}" if key in msg else value
    return msg


def encode_action(name: str, action_id: str, fields: Mapping[str, object]) -> bytes:
    """Serialise an action; a list value repeats its key (``Variable``).  Values holding CR
    or LF are refused: they would smuggle extra headers into the action."""
    lines = [f"Action: {name}", f"ActionID: {action_id}"]
    for key, value in fields.items():
        values: Iterable[object] = value if isinstance(value, list | tuple) else (value,)
        for v in values:
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            for part in (key, text):
                if "\r" in part or "\n" in part:
                    raise AmiError(f"AMI field {key!r} must not contain a line break")
            lines.append(f"{key}: {text}")
    if "\r" in name or "\n" in name or ":" in name:
        raise AmiError(f"invalid AMI action name {name!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AmiProtocol(asyncio.Protocol):
    """Splits the byte stream into messages and hands them to :class:`AmiClient`."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client
        self._buffer = ""
        self._banner_seen = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data.decode("utf-8", errors="replace")
        if not self._banner_seen:
            if "\r\n" not in self._buffer:
                return
            first, _, rest = self._buffer.partition("\r\n")
            if first.startswith(BANNER_PREFIX):
                self._client._on_banner(first)
                self._buffer = rest
            self._banner_seen = True
        while "\r\n\r\n" in self._buffer:
            block, _, self._buffer = self._buffer.partition("\r\n\r\n")
            if block.strip():
                self._client._on_message(parse_message(block))

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_lost(exc)


class _ListCollector:
    def __init__(self) -> None:
        self.items: list[Message] = []
        self.done: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()


class AmiClient:
    """One logged-in AMI connection; create it with :meth:`connect`."""

    def __init__(self) -> None:
        self.banner = ""
        self._protocol: AmiProtocol | None = None
        self._ids = itertools.count(1)
        self._prefix = f"hl{id(self) & 0xFFFF:x}-"
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._lists: dict[str, _ListCollector] = {}
        self._subscribers: list[asyncio.Queue[Message]] = []
        self._banner_ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._closed = False

    # ---- lifecycle --------------------------------------------------------------------
    @classmethod
    async def connect(
        cls, host: str, port: int, username: str, secret: str, timeout: float = 5.0
    ) -> AmiClient:
        """Connect, read the banner and log in; raise :class:`AmiError` on any failure."""
        client = cls()
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: AmiProtocol(client), host, port), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise AmiError(f"cannot connect to AMI at {host}:{port}: {exc}") from exc
        client._protocol = protocol
        try:
            await asyncio.wait_for(asyncio.shield(client._banner_ready), timeout)
            reply = await client.action(
                "Login", Username=username, Secret=secret, Events="on", timeout=timeout
            )
        except AmiError:
            await client.close()
            raise
        except TimeoutError as exc:
            await client.close()
            raise AmiError(f"no AMI banner from {host}:{port} within {timeout} s") from exc
        if reply.get("Response") != "Success":
            await client.close()
            raise AmiError(
                f"AMI login as {username!r} refused: {reply.get('Message', reply)}", reply
            )
        return client

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Log off (best effort) and close the connection."""
        if self._closed:
            return
        if self._protocol is not None and self._protocol.transport is not None:
            with contextlib.suppress(AmiError, TimeoutError):
                await self.action("Logoff", timeout=1.0)
            self._protocol.transport.close()
        self._on_lost(None)

    async def __aenter__(self) -> AmiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- actions ----------------------------------------------------------------------
    def _send(self, name: str, fields: Mapping[str, object]) -> str:
        if self._closed or self._protocol is None or self._protocol.transport is None:
            raise AmiError("AMI connection is closed")
        action_id = f"{self._prefix}{next(self._ids)}"
        data = encode_action(name, action_id, fields)
        self._protocol.transport.write(data)
        return action_id

    async def action(self, name: str, *, timeout: float = 10.0, **fields: object) -> Message:
        """Send an action and return its ``Response`` message (``Success`` or ``Error``;
        the caller checks ``reply["Response"]``)."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        action_id = self._send(name, fields)
        self._pending[action_id] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise AmiError(f"no AMI response to {name} within {timeout} s") from exc
        finally:
            self._pending.pop(action_id, None)

    async def action_list(
        self, name: str, *, timeout: float = 10.0, **fields: object
    ) -> list[Message]:
        """Send a list action (``QueueStatus``, ``CoreShowChannels`` …) and return its events,
        without the final ``…Complete`` event.  An ``Error`` response raises AmiError."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        collector = _ListCollector()
        action_id = self._send(name, fields)
        self._pending[action_id] = fut
        self._lists[action_id] = collector
        try:
            async with asyncio.timeout(timeout):
                reply = await fut
                if reply.get("Response") != "Success":
                    raise AmiError(f"{name} failed: {reply.get('Message', reply)}", reply)
                return await collector.done
        except TimeoutError as exc:
            raise AmiError(f"{name} did not complete within {timeout} s") from exc
        finally:
            self._pending.pop(action_id, None)
            self._lists.pop(action_id, None)

    async def command(self, command: str, timeout: float = 10.0) -> str:
        """Run a CLI command through AMI and return its output text."""
        reply = await self.action("Command", Command=command, timeout=timeout)
        if reply.get("Response") not in ("Success", "Follows"):
            raise AmiError(f"command {command!r} failed: {reply.get('Message')}", reply)
        return reply.get("Output", "")

    # ---- events -----------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue that receives every event from now on (and a final ``AmiDisconnected``)."""
        queue: asyncio.Queue[Message] = asyncio.Queue()
        if self._closed:
            queue.put_nowait({"Event": DISCONNECTED})
        else:
            self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    async def wait_for(
        self,
        predicate: Callable[[Message], bool],
        timeout: float = 10.0,
        queue: asyncio.Queue[Message] | None = None,
    ) -> Message:
        """The first event on ``queue`` (a new subscription if None) matching ``predicate``;
        events that do not match are consumed.  Raises AmiError on time-out or disconnect."""
        own = queue is None
        q = self.subscribe() if queue is None else queue
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await q.get()
                    if event.get("Event") == DISCONNECTED:
                        raise AmiError("AMI connection lost while waiting for an event")
                    if predicate(event):
                        return event
        except TimeoutError as exc:
            raise AmiError(f"no matching AMI event within {timeout} s") from exc
        finally:
            if own:
                self.unsubscribe(q)

    # ---- protocol callbacks -----------------------------------------------------------
    def _on_banner(self, line: str) -> None:
        self.banner = line
        if not self._banner_ready.done():
            self._banner_ready.set_result(line)

    def _on_message(self, msg: Message) -> None:
        if not self._banner_ready.done():
            self._banner_ready.set_result("")
        action_id = msg.get("ActionID", "")
        if "Response" in msg:
            fut = self._pending.get(action_id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if "Event" not in msg:
            log.debug("AMI message without Response or Event: %r", msg)
            return
        collector = self._lists.get(action_id)
        if collector is not None and not collector.done.done():
            if msg.get("EventList") == "Complete" or msg["Event"].endswith("Complete"):
                collector.done.set_result(collector.items)
            else:
                collector.items.append(msg)
        for queue in self._subscribers:
            queue.put_nowait(msg)

    def _on_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        error = AmiError(f"AMI connection lost{f': {exc}' if exc else ''}")
        if not self._banner_ready.done():
            self._banner_ready.set_exception(error)
            self._banner_ready.exception()  # mark retrieved
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        for collector in self._lists.values():
            if not collector.done.done():
                collector.done.set_exception(error)
        for queue in self._subscribers:
            queue.put_nowait({"Event": DISCONNECTED})
        self._subscribers.clear()


RECONNECT_S = (0.5, 1.0, 2.0, 5.0)


async def follow_events(
    host: str,
    port: int,
    username: str,
    secret: str,
    handle: Callable[[Message, AmiClient], Awaitable[None]],
    what: str = "events",
    connected: Callable[[AmiClient | None], None] | None = None,
) -> None:
    """Log in and hand every event to ``handle(event, client)`` for ever, re-connecting with
    back-off when the connection drops; an event ``handle`` fails on is logged and skipped.
    ``connected(client)`` is told of each connection (``None`` when it is lost)."""
    attempt = 0
    while True:
        try:
            client = await AmiClient.connect(host, port, username, secret)
        except (AmiError, OSError) as exc:
            delay = RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)]
            log.info("AMI %s:%d not reachable (%s); retry in %.1f s", host, port, exc, delay)
            attempt += 1
            await asyncio.sleep(delay)
            continue
        attempt = 0
        events = client.subscribe()
        log.info("AMI connected: following %s", what)
        if connected is not None:
            connected(client)
        try:
            while True:
                event = await events.get()
                if event.get("Event") == DISCONNECTED:
                    break
                try:
                    await handle(event, client)
                except Exception:
                    log.exception("AMI event %s not handled", event.get("Event"))
        finally:
            if connected is not None:
                connected(None)
            with contextlib.suppress(Exception):
                await client.close()
        log.warning("AMI connection lost; reconnecting")
