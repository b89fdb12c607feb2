"""The AGI side of a :class:`ivr.actions.Listen`: the speech service over AudioSocket.

Steps (helpers from :mod:`speech.service`): is the service alive (Redis heartbeat)? register
a listen for the call → play the prompt → ``EXEC AudioSocket(<uuid>,<host>:<port>)`` (the
service hangs the socket up at the end of speech, so the app returns at once) → wait at
most ``draft_wait_s`` for the draft.  Any failure on the way (Redis down or slow, service
down, no draft in time) gives ``Heard()`` without a draft: the flow then goes on by keypad or
to the general seat.  The caller is never asked to speak when nobody listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from agi_scripts.driver import prompt_path
from agi_scripts.errors import AgiHangup
from agi_scripts.session import AgiSession
from hotline.call import TicketDraft
from ivr.actions import CallInfo, Heard, Listen

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from hotline.config import HotlineConfig

log = logging.getLogger("agi_scripts.speech")

REDIS_STEP_S = 0.5
"""Bound on each Redis step before the caller is played anything."""
HANGUP_WAIT_S = 0.15
"""After AudioSocket answers -1: how long to wait for Asterisk's HANGUP line (measured: ~40 ms
after the reply) before treating it as an unreachable service."""
DRAFT_WAIT_S = 8.0
"""How long the caller may wait, after speaking, for the draft."""
FAILED_SOCKET_WAIT_S = 2.0
"""After AudioSocket answered -1 (no hang-up): how long to wait for a draft all the same."""


class SpeechListener:
    """Implements :class:`agi_scripts.services.Listener` with the speech service."""

    def __init__(
        self,
        redis: Redis,
        host: str = "127.0.0.1",
        port: int = 4574,
        draft_wait_s: float = DRAFT_WAIT_S,
    ) -> None:
        self.redis = redis
        self.host = host
        self.port = port
        self.draft_wait_s = draft_wait_s

    @classmethod
    def from_config(cls, config: HotlineConfig) -> SpeechListener:
        """Redis from ``config.redis``; the AudioSocket port from ``HOTLINE_SPEECH_PORT`` (set
        by the stack) or ``agi.port + 1``."""
        from redis.asyncio import Redis

        redis = Redis(**config.redis.client_kwargs(), socket_connect_timeout=REDIS_STEP_S)  # type: ignore[arg-type]
        port = int(os.environ.get("HOTLINE_SPEECH_PORT") or config.agi.port + 1)
        return cls(redis, host="127.0.0.1", port=port)

    async def close(self) -> None:
        await self.redis.aclose()

    async def listen(
        self, session: AgiSession, call: CallInfo, action: Listen, listen_id: str
    ) -> Heard:
        from speech.service import register_listen, speech_service_alive, wait_for_draft

        try:
            async with asyncio.timeout(REDIS_STEP_S):
                alive = await speech_service_alive(self.redis)
                if alive:
                    await register_listen(
                        self.redis, call.call_id, action.max_s, action.silence_ms,
                        listen_id=listen_id,
                    )  # fmt: skip
        except Exception as exc:  # Redis down, slow or refusing: keypad
            log.warning("call %s: speech unavailable (%s); keypad", call.call_id, exc)
            return Heard()
        if not alive:
            log.info("call %s: speech service not running; keypad", call.call_id)
            return Heard()
        await session.stream_file(prompt_path(action.prompt), "")
        result = await session.exec("AudioSocket", listen_id, f"{self.host}:{self.port}")
        if result < 0:
            if not session.hung_up:
                await asyncio.sleep(HANGUP_WAIT_S)  # HANGUP follows -1 within ~40 ms
            if session.hung_up:
                raise AgiHangup("caller hung up while speaking")
            # Asterisk also answers -1 when the caller's line sent no audio for 2 s (a phone
            # gone quiet after speaking): the service may still publish a draft, so wait a
            # little for it; a service that never got the audio publishes nothing.
            log.info(
                "call %s: AudioSocket ended with %d; short wait for a draft", call.call_id, result
            )
            message = await wait_for_draft(
                self.redis, call.call_id, min(self.draft_wait_s, FAILED_SOCKET_WAIT_S), listen_id
            )
            return heard_from(message)
        message = await wait_for_draft(self.redis, call.call_id, self.draft_wait_s, listen_id)
        return heard_from(message)


def heard_from(message: dict[str, Any] | None) -> Heard:
    """The service's published message → :class:`Heard` (``draft`` = the extracted fields)."""
    draft = TicketDraft.parse(message) if message else None
    if draft is None:
        return Heard()
    return Heard(
        transcript=str(message.get("transcript") or "") if message else "",
        draft=draft.usable,
        listen_id=draft.listen_id,
    )
