"""What the handlers use besides the channel, named and typed: the server hands each one to
the handlers explicitly (:class:`agi_scripts.server.AgiApp` fields); ``None`` means the
service is not running and the call goes on without it (fail open)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from hotline.call import CallEvent
from hotline.config import HotlineConfig
from ivr.actions import Action, Article, CallInfo, Heard, Listen, NoticePrompt, Result

if TYPE_CHECKING:
    from agi_scripts.session import AgiSession

Flow = Generator[Action, Result | None, None]
FlowFactory = Callable[[HotlineConfig, CallInfo], Flow]


class Listener(Protocol):
    """The speech seam: capture what the caller says for a :class:`Listen` action; the draft
    that comes back belongs to ``listen_id``."""

    async def listen(
        self, session: AgiSession, call: CallInfo, action: Listen, listen_id: str
    ) -> Heard: ...


class KbOffers(Protocol):
    """The knowledge base for callers (``kb.phone.CallerOffers``): the article to play for
    what the caller said, or an empty one; never raises."""

    async def offer(self, transcript: str) -> Article: ...


class CallNotices(Protocol):
    """Incident notices (第十三条, ``notices.phone.CallerNotices``) in their window at ``at``,
    ready to play; never raises (none on failure)."""

    async def for_call(self, at: datetime) -> tuple[NoticePrompt, ...]: ...


class CallerScreen(Protocol):
    """What :meth:`callers.policy.CallerPolicy.screen` returns (duck-typed)."""

    @property
    def flag(self) -> str: ...

    open_tickets: tuple[dict[str, str], ...]


class CallerRules(Protocol):
    """The caller rules (``callers.policy.CallerPolicy``)."""

    async def screen(self, caller: str, call_id: str) -> CallerScreen: ...

    async def count_notice(self, reason: str) -> None: ...

    async def call_ended(
        self, caller: str, call_id: str, seconds: float, had_demand: bool
    ) -> None: ...


class HarassmentFlags(Protocol):
    """Where agents' harassment flags go (``callers.throttle.Throttle``)."""

    async def flag_harassment(self, caller: str, by: str, note: str, call_id: str) -> int: ...


class DraftKeeper(Protocol):
    """Stores a listen's draft in the background (``speech.drafts.DraftKeeper``)."""

    def keep(self, call_id: str, caller: str, listen_id: str, since: float | None = None) -> None:
        """``since``: unix time the listen began (its draft is written after it)."""


class EventSink(Protocol):
    """The call event stream's producer side (``calls.stream.CallStream``): never raises,
    never holds the call."""

    def emit(self, event: CallEvent) -> None: ...


class AcdRedis(Protocol):
    """What the agents' feature codes use of a ``redis.asyncio`` client (``acd.agent_log``)."""

    async def hmget(self, name: str, *keys: str) -> list[bytes | None]: ...

    async def xrevrange(self, name: str, count: int | None = None) -> list: ...

    async def xadd(self, name: str, fields: dict, **kw: object) -> bytes: ...

    async def aclose(self) -> None: ...
