"""The access store in a FastAPI app: a guard in front of it, one dependency per role, login.

* :class:`AccessGuard` (ASGI middleware) runs before anything reads a request: it finds the
  session (``hotline_session`` cookie, or ``Authorization: Bearer``; never the query string),
  refuses a request without one with 401 and a body over the limit with 413 *without reading
  the body*, and writes one audit entry per request under ``/api/`` (who, what, target, from
  where, the status — refusals included).
* :func:`require` makes the dependency for a set of roles: 401 without a session, 403 for
  another role (a WebSocket is closed with 1008 instead).
* :func:`access_router`: ``POST /api/login``, ``POST /api/logout``, ``GET /api/me`` and the
  admins' ``GET /api/admin/audit`` and ``GET /api/admin/users``.

An endpoint adds to its audit entry with :func:`note` (e.g. "callback number read").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection

from access.store import PASSWORD_MAX, ROLES, AccessStore, LoginRefused, LoginThrottled, User

log = logging.getLogger("access")

COOKIE = "hotline_session"
PUBLIC = frozenset({"/api/login", "/api/health"})
"""Paths under ``/api/`` that need no session (the login body is still capped)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


class Problem(BaseModel):
    """Every error answer: ``{"detail": "what was wrong"}``."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a body that cannot be parsed (not UTF-8 JSON)"},
    401: {"model": Problem, "description": "no valid session (log in first)"},
    403: {"model": Problem, "description": "the session's role may not do this"},
    413: {"model": Problem, "description": "request body over the limit"},
    422: {"model": Problem, "description": "bad input (with the reason); nothing changed"},
}
"""Documented on every guarded route (the OpenAPI schema says what really comes back)."""


def session_token(scope: Scope) -> str:
    """The session token from the cookie or an ``Authorization: Bearer`` header."""
    conn = HTTPConnection(scope)
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return conn.cookies.get(COOKIE, "")


def note(conn: HTTPConnection, detail: str) -> None:
    """Add ``detail`` to this request's audit entry."""
    conn.scope.setdefault("state", {})["audit_detail"] = detail


def current_user(conn: HTTPConnection) -> User | None:
    return conn.scope.get("state", {}).get("user")


class AccessGuard:
    """ASGI middleware: session → 401, body cap → 413, audit; see the module docstring."""

    def __init__(self, app: ASGIApp, store: AccessStore, max_body: int, prefix: str = "/api/"):
        self.app = app
        self.store = store
        self.max_body = max_body
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = session_token(scope)
        user = await asyncio.to_thread(self.store.session, token) if token else None
        state["user"] = user
        outcome: dict[str, Any] = {"status": 500, "audited": False}

        async def audited(status: int) -> None:
            outcome["status"] = status
            if not outcome["audited"]:
                outcome["audited"] = True
                await self._audit(scope, status)

        outcome["audit"] = audited
        try:
            if user is None and path not in PUBLIC:
                await audited(await self._refuse(scope, send, 401, "log in first"))
                return
            if scope["type"] == "http":
                await self._http(scope, receive, send, outcome)
            else:
                await self._websocket(scope, receive, send, outcome)
        finally:
            if not outcome["audited"]:
                await asyncio.shield(audited(outcome["status"]))

    def _limit(self, scope: Scope) -> int:
        """``max_body``, or a larger limit an app sets for an admin's uploads on one path
        prefix (``app.state.body_limits``: prefix → bytes)."""
        user = scope.get("state", {}).get("user")
        app = scope.get("app")
        limits = getattr(getattr(app, "state", None), "body_limits", None) or {}
        if user is None or user.role != "admin":
            return self.max_body
        path = scope.get("path", "")
        return max([self.max_body, *(n for p, n in limits.items() if path.startswith(p))])

    async def _http(self, scope: Scope, receive: Any, send: Any, outcome: dict) -> None:
        limit = self._limit(scope)
        length = HTTPConnection(scope).headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await outcome["audit"](await self._refuse(scope, send, 413, self._too_large()))
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = bytearray()
            while True:  # chunked bodies: read at most max_body + 1 bytes, then stop
                message = await receive()
                if message["type"] != "http.request":
                    outcome["status"] = 499  # the client went away mid-body: nothing done
                    return
                body += message.get("body", b"")
                if len(body) > limit:
                    await outcome["audit"](await self._refuse(scope, send, 413, self._too_large()))
                    return
                if not message.get("more_body", False):
                    break
            receive = _replay(bytes(body), receive)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                await outcome["audit"](int(message["status"]))
            await send(message)

        await self.app(scope, receive, sending)

    async def _websocket(self, scope: Scope, receive: Any, send: Any, outcome: dict) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "websocket.accept":
                await outcome["audit"](101)
            elif message["type"] == "websocket.close":
                await outcome["audit"](403)  # closed before it was accepted: refused
            await send(message)

        await self.app(scope, receive, sending)

    def _too_large(self) -> str:
        return f"request body over {self.max_body} bytes"

    @staticmethod
    async def _refuse(scope: Scope, send: Any, status: int, detail: str) -> int:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail})
            return 403
        response = JSONResponse({"detail": detail}, status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, _no_body, send)
        return status

    async def _audit(self, scope: Scope, status: int) -> None:
        state = scope.get("state", {})
        user: User | None = state.get("user")
        route = scope.get("route")
        template = getattr(route, "path", None) or scope.get("path", "")
        params = scope.get("path_params") or {}
        kind = "WS" if scope["type"] == "websocket" else scope.get("method", "")
        client = scope.get("client")
        try:
            await asyncio.to_thread(
                self.store.record,
                f"{kind} {template}",
                status,
                who=user.name if user else state.get("audit_who"),
                role=user.role if user else None,
                target=" ".join(f"{k}={v}" for k, v in sorted(params.items())) or None,
                address=client[0] if client else None,
                detail=state.get("audit_detail"),
            )
        except Exception as exc:  # the answer stands; the failure is loud
            log.error("audit entry not written (%s %s → %s): %s", kind, template, status, exc)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def require(*roles: str) -> Callable[[HTTPConnection], User]:
    """The dependency for an endpoint open to ``roles``: returns the session's user."""
    allowed = frozenset(roles)

    def check(conn: HTTPConnection) -> User:
        user = current_user(conn)
        websocket = conn.scope["type"] == "websocket"
        if user is None:
            if websocket:
                raise WebSocketException(1008, "log in first")
            raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Bearer"})
        if user.role not in allowed:
            why = f"role {user.role!r} may not do this (needs {' or '.join(sorted(allowed))})"
            if websocket:
                raise WebSocketException(1008, why)
            raise HTTPException(403, why)
        return user

    check.__name__ = "role_" + "_or_".join(sorted(allowed))
    return check


ADMIN = require("admin")
ANYONE = require(*ROLES)


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    bearer: bool = False
    """True: also return the token (API clients); a browser keeps only the HttpOnly cookie."""


class SessionInfo(BaseModel):
    name: str
    role: str
    agent: str | None
    department: str | None = None
    expires_at: float | None = None
    token: str | None = None


def access_router(store: AccessStore) -> APIRouter:
    """Login, logout, who am I, and the admins' audit log and user list."""
    router = APIRouter()

    @router.post(
        "/api/login",
        responses={
            401: ERRORS[401],
            413: ERRORS[413],
            422: ERRORS[422],
            429: {"model": Problem, "description": "too many failed logins; see Retry-After"},
        },
    )
    async def login(body: Login, request: Request, response: Response) -> SessionInfo:
        request.state.audit_who = body.name
        address = request.client.host if request.client else "?"
        try:
            token, user, expires = await asyncio.to_thread(
                store.login, body.name, body.password, address
            )
        except LoginThrottled as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_s)}) from None
        except LoginRefused as exc:
            raise HTTPException(401, str(exc)) from None
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(store.limits.session_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return SessionInfo(
            **user.public(), expires_at=expires, token=token if body.bearer else None
        )

    @router.post("/api/logout", status_code=204, responses=ERRORS)
    async def logout(request: Request, _: Annotated[User, Depends(ANYONE)]) -> Response:
        await asyncio.to_thread(store.logout, session_token(request.scope))
        out = Response(status_code=204)
        out.delete_cookie(COOKIE, path="/")
        return out

    @router.get("/api/me", responses=ERRORS)
    async def me(user: Annotated[User, Depends(ANYONE)]) -> SessionInfo:
        return SessionInfo(**user.public())

    @router.get("/api/admin/audit", responses=ERRORS)
    async def audit(
        _: Annotated[User, Depends(ADMIN)],
        count: Annotated[int, Query(ge=1, le=1000)] = 100,
        who: Annotated[str | None, Query(max_length=32)] = None,
    ) -> dict[str, list[dict[str, Any]]]:
        return {"records": await asyncio.to_thread(store.audit, count, who)}

    @router.get("/api/admin/users", responses=ERRORS)
    async def users(_: Annotated[User, Depends(ADMIN)]) -> dict[str, list[dict[str, Any]]]:
        found = await asyncio.to_thread(store.users)
        return {"users": [{**u.public(), "disabled": u.disabled} for u in found]}

    return router


def protect(app: FastAPI, store: AccessStore, max_body: int) -> None:
    """Put ``store`` in front of ``app``: the guard, the login and admin routes, and
    validation errors answered like every other error (``{"detail": "where: what"}``)."""
    app.add_middleware(AccessGuard, store=store, max_body=max_body)
    app.include_router(access_router(store))
    app.add_exception_handler(RequestValidationError, _invalid)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [
        f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in errors[:5]
    ]  # never the input itself: it may hold a caller's number
    return JSONResponse({"detail": "; ".join(parts) or "bad input"}, status_code=422)
