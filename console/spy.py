"""Supervisors listen to, whisper to or barge into an agent's live call (issue 10).

The supervisor's own phone (``supervisors:`` in the config, PJSIP endpoint
``supervisor<ID>``) is called by AMI ``Originate`` into the dialplan's ``hotline-spy`` context,
which runs ``ChanSpy`` on the agent's channel, named by its uniqueid (option ``u``).  The
agent's channel is the one of that call (linkedid, from the console's call follower) whose
name is ``PJSIP/agent<ID>-…`` for the agent the follower saw answer; no caller field is read.

Modes and ChanSpy options (``hotline.dialplan_vars.SPY_MODES``): listen (only hears), whisper
``w`` (the agent hears the supervisor, the caller does not), barge ``B`` (both hear).  A mode
switch during the call is AMI ``PlayDTMF`` with ``Receive: true`` on the supervisor's channel:
ChanSpy (option ``d``) reads it as the supervisor pressing 4, 5 or 6 (measured in
tests/integration/test_supervisor_spy.py; docs/decisions.md).

API (role ``supervisor`` only; every request, refusals included, is in the audit log with
the call id and the detail "mode=… phone=…")::

    GET    /api/supervisor/calls                     calls on agents now, with their spy sessions
    POST   /api/supervisor/calls/{call_id}/spy       {"mode", "phone"}: ring the phone, join
    PATCH  /api/supervisor/calls/{call_id}/spy       {"mode", "phone"}: switch mode
    DELETE /api/supervisor/calls/{call_id}/spy?phone=  hang up the supervisor's phone
    GET    /supervisor/spy                           a small page: 监听 / 耳语 / 强插 / 结束

404: the call is not on an agent (or no session of that phone on it); 422: a bad body or an
unknown phone; 409: that phone is already on a call; 502: the phone did not answer; 503: AMI
(or the call follower) is down.  Nothing here changes the call itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from access.store import User
from access.web import ERRORS, Problem, note, require
from hotline import dialplan_vars as V
from hotline.ami import AmiClient, AmiError
from hotline.config import HotlineConfig, Supervisor

log = logging.getLogger("console.spy")

Mode = Literal["listen", "whisper", "barge"]
MODE_NAMES = {"listen": "监听", "whisper": "耳语", "barge": "强插"}
PHONE_RE = r"^[0-9]{3,8}$"
PAGE = Path(__file__).with_name("spy.html")
IS_SUPERVISOR = require("supervisor")
AMI_TIMEOUT_S = 5.0
AGENT_CHANNEL = r"PJSIP/agent{agent}-[0-9a-f]{{8}}"
UNIQUEID = re.compile(r"^[0-9]{1,20}\.[0-9]{1,10}$")

Connect = Callable[[], Awaitable[AmiClient]]


class SpyError(Exception):
    """A spy request that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class SpySession:
    """One supervisor phone on one agent's call."""

    call_id: str
    linkedid: str
    agent: str
    phone: str
    mode: str
    by: str
    channel: str
    """The supervisor's channel's uniqueid (set by Originate ``ChannelId``)."""
    target: str
    """The agent's channel's uniqueid."""
    started_at: float


class SpyDesk:
    """Rings supervisors' phones into agents' calls and switches or ends their sessions.

    Each operation uses a connection of its own (``connect``): a ringing ``Originate`` blocks
    the AMI session it runs on, so it must not hold up the call follower's connection."""

    def __init__(self, config: HotlineConfig, connect: Connect | None = None) -> None:
        self.config = config
        self.phones: dict[str, Supervisor] = {s.id: s for s in config.supervisors}
        self.sessions: dict[tuple[str, str], SpySession] = {}
        """(linkedid, phone) → session."""
        self._connect = connect or self._login

    async def _login(self) -> AmiClient:
        a = self.config.ami
        return await AmiClient.connect(a.host, a.port, a.username, a.secret, AMI_TIMEOUT_S)

    @contextlib.asynccontextmanager
    async def _ami(self) -> AsyncIterator[AmiClient]:
        try:
            client = await self._connect()
        except (AmiError, OSError) as exc:
            raise SpyError(503, f"AMI is not available: {exc}") from None
        try:
            yield client
        except (AmiError, OSError) as exc:
            raise SpyError(503, f"AMI failed: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    def phone(self, phone_id: str) -> Supervisor:
        sup = self.phones.get(phone_id)
        if sup is None:
            raise SpyError(422, f"phone: no supervisor phone {phone_id!r} in the config")
        return sup

    @staticmethod
    async def channels(client: AmiClient) -> list[dict[str, str]]:
        return await client.action_list("CoreShowChannels", timeout=AMI_TIMEOUT_S)

    @staticmethod
    def agent_channel(channels: list[dict[str, str]], linkedid: str, agent: str) -> str | None:
        """The uniqueid of agent ``agent``'s channel in call ``linkedid``, if it is up."""
        name = re.compile(AGENT_CHANNEL.format(agent=re.escape(agent)))
        for ch in channels:
            uid = ch.get("Uniqueid", "")
            if (ch.get("Linkedid") == linkedid and name.fullmatch(ch.get("Channel", ""))
                    and UNIQUEID.match(uid)):  # fmt: skip
                return uid
        return None

    async def start(self, rec: Any, phone_id: str, mode: str, by: str) -> SpySession:
        """Ring ``phone_id`` and join the agent's channel of call ``rec`` in ``mode``."""
        sup = self.phone(phone_id)
        async with self._ami() as client:
            channels = await self.channels(client)
            live = {c.get("Uniqueid") for c in channels}
            for key, old in list(self.sessions.items()):
                if old.channel not in live:
                    self.sessions.pop(key, None)
            if any(s.phone == phone_id for s in self.sessions.values()):
                raise SpyError(409, f"supervisor phone {phone_id} is already on a call")
            target = self.agent_channel(channels, rec.linkedid, rec.agent)
            if target is None:
                raise SpyError(404, f"the agent's channel of call {rec.call_id} is gone")
            channel = f"spy-{uuid.uuid4().hex}"
            ring_s = self.config.supervise.ring_s
            reply = await client.action(
                "Originate",
                Channel=f"PJSIP/{sup.endpoint}",
                Context=V.SPY_CONTEXT,
                Exten=mode,
                Priority=1,
                Timeout=ring_s * 1000,
                CallerID=f'"{MODE_NAMES[mode]} {rec.agent}" <{rec.agent}>',
                Variable=f"{V.SPY_TARGET}={target}",
                ChannelId=channel,
                Async=False,
                timeout=ring_s + AMI_TIMEOUT_S,
            )
        if reply.get("Response") != "Success":
            raise SpyError(502, f"supervisor phone {phone_id} did not answer")
        session = SpySession(rec.call_id, rec.linkedid, rec.agent, phone_id, mode, by, channel,
                             target, time.time())  # fmt: skip
        self.sessions[(rec.linkedid, phone_id)] = session
        return session

    def session(self, rec: Any, phone_id: str) -> SpySession:
        session = self.sessions.get((rec.linkedid, phone_id))
        if session is None:
            raise SpyError(404, f"supervisor phone {phone_id} is not on call {rec.call_id}")
        return session

    async def switch(self, rec: Any, phone_id: str, mode: str) -> SpySession:
        """ChanSpy's own mode keys (4/5/6), as if the supervisor pressed them."""
        session = self.session(rec, phone_id)
        async with self._ami() as client:
            reply = await client.action("PlayDTMF", Channel=session.channel,
                                        Digit=V.SPY_DTMF[mode], Duration=120, Receive=True,
                                        timeout=AMI_TIMEOUT_S)  # fmt: skip
        if reply.get("Response") != "Success":
            self.sessions.pop((rec.linkedid, phone_id), None)
            raise SpyError(404, f"supervisor phone {phone_id} has left call {rec.call_id}")
        session.mode = mode
        return session

    async def stop(self, rec: Any, phone_id: str) -> SpySession:
        """Hang up the supervisor's phone (the agent's call goes on)."""
        session = self.session(rec, phone_id)
        async with self._ami() as client:
            await client.action("Hangup", Channel=session.channel, timeout=AMI_TIMEOUT_S)
        self.sessions.pop((rec.linkedid, phone_id), None)
        return session

    def forget_all_but(self, linkedids: set[str]) -> None:
        """Drop the sessions of calls that ended (ChanSpy hung up with the agent's channel)."""
        for key in [k for k in self.sessions if k[0] not in linkedids]:
            self.sessions.pop(key, None)

    def on_call(self, linkedid: str) -> list[SpySession]:
        return [s for (lid, _), s in self.sessions.items() if lid == linkedid]


class SpyStart(BaseModel):
    """Which supervisor phone joins, and how."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode
    phone: str = Field(pattern=PHONE_RE)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {
        404: "the call is not on an agent, or that phone is not on it",
        409: "that supervisor phone is already on a call",
        502: "the supervisor's phone did not answer",
        503: "AMI or the call follower is down",
    }
    return {**ERRORS, **{c: {"model": Problem, "description": why[c]} for c in codes}}


def spy_router(config: HotlineConfig, services: Any, desk: SpyDesk | None = None) -> APIRouter:
    """The routes above; ``services.follower`` says which agent has which call."""
    router = APIRouter()
    desk = desk or SpyDesk(config)

    def call_on_agent(call_id: str) -> Any:
        follower = services.follower
        if follower is None or not follower.ami_connected:
            raise HTTPException(503, "the call follower (AMI) is not available")
        rec = follower.call(call_id)
        if rec is None or not rec.agent:
            raise HTTPException(404, f"call {call_id[:64]!r} is not on an agent")
        return rec

    async def run(coro: Awaitable[SpySession]) -> dict[str, Any]:
        try:
            session = await coro
        except SpyError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return asdict(session)

    @router.get("/supervisor/spy", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @router.get("/api/supervisor/calls", responses=_errors(503))
    async def calls(_: Annotated[User, Depends(IS_SUPERVISOR)]) -> dict[str, Any]:
        follower = services.follower
        if follower is None:
            raise HTTPException(503, "the call follower (AMI) is not available")
        desk.forget_all_but(set(follower.calls))
        out = [
            {"call_id": r.call_id, "agent": r.agent, "seat": r.seat, "answered_at": r.answered_at,
             "spies": [{"phone": s.phone, "mode": s.mode, "by": s.by}
                       for s in desk.on_call(r.linkedid)]}
            for r in list(follower.calls.values()) if r.agent
        ]  # fmt: skip
        phones = [{"id": s.id, "name": s.name} for s in config.supervisors]
        return {"calls": out, "phones": phones}

    @router.post("/api/supervisor/calls/{call_id}/spy", status_code=201,
                 responses=_errors(404, 409, 502, 503))  # fmt: skip
    async def start(
        call_id: str, body: SpyStart, request: Request,
        user: Annotated[User, Depends(IS_SUPERVISOR)],
    ) -> dict[str, Any]:  # fmt: skip
        note(request, f"spy start mode={body.mode} phone={body.phone}")
        rec = call_on_agent(call_id)
        out = await run(desk.start(rec, body.phone, body.mode, user.name))
        log.info("call %s: %s %s agent %s from phone %s", rec.call_id, user.name, body.mode,
                 rec.agent, body.phone)  # fmt: skip
        return out

    @router.patch("/api/supervisor/calls/{call_id}/spy", responses=_errors(404, 503))
    async def switch(
        call_id: str, body: SpyStart, request: Request,
        user: Annotated[User, Depends(IS_SUPERVISOR)],
    ) -> dict[str, Any]:  # fmt: skip
        note(request, f"spy switch mode={body.mode} phone={body.phone}")
        rec = call_on_agent(call_id)
        out = await run(desk.switch(rec, body.phone, body.mode))
        log.info("call %s: %s switched phone %s to %s", rec.call_id, user.name, body.phone,
                 body.mode)  # fmt: skip
        return out

    @router.delete("/api/supervisor/calls/{call_id}/spy", responses=_errors(404, 503))
    async def stop(
        call_id: str, request: Request, user: Annotated[User, Depends(IS_SUPERVISOR)],
        phone: Annotated[str, Query(pattern=PHONE_RE)],
    ) -> dict[str, Any]:  # fmt: skip
        note(request, f"spy stop phone={phone}")
        rec = call_on_agent(call_id)
        out = await run(desk.stop(rec, phone))
        log.info("call %s: %s ended phone %s", rec.call_id, user.name, phone)
        return out

    return router


def mount_spy(app: FastAPI, config: HotlineConfig, services: Any) -> None:
    """Add the listen/whisper/barge routes to the console ``app`` (``services.spy``, when
    set, is the :class:`SpyDesk` to use: a test's over a fake AMI)."""
    app.include_router(spy_router(config, services, getattr(services, "spy", None)))
