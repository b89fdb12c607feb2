"""The admins' config page (``/admin``, ``console/admin.html``) and its API, admin role only
(any other role gets 403, audited by :mod:`access.web` like every request)::

    GET  /api/admin/config                      the running version and its YAML (secrets
                                                hidden), the forms' data (menus, seats, throttle)
    POST /api/admin/config/edit                 {"text", "edits": [...]} → {"text"}: a form's
                                                changes made to the YAML text (admin.yaml_edit)
    POST /api/admin/config/preview              {"text"} → the YAML and Asterisk diffs, the
                                                reloads; 422 {"detail", "problems"} with lines
    POST /api/admin/config/apply                {"text", "base", "comment"}; 409 when "base"
                                                no longer runs, 422 invalid, 502 reload failed
    GET  /api/admin/config/versions             applied versions, newest first
    GET  /api/admin/config/versions/{n}         one version (secrets hidden)
    GET  /api/admin/config/versions/{n}/diff    ?against=m (default: what runs)
    POST /api/admin/config/rollback             {"version", "base", "comment"}

Nothing here touches a call: the apply goes through :class:`admin.lifecycle.Lifecycle`
(validate, reload only what changed, FastAGI rereads the file).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from access.store import User
from access.web import ADMIN, ERRORS, Problem, note
from admin.lifecycle import (
    ApplyFailed,
    ConfigError,
    Lifecycle,
    NoSuchVersion,
    Preview,
    StaleBase,
    mask,
    secrets_of,
    unmask,
)
from admin.versions import COMMENT_MAX, Version
from admin.yaml_edit import EditError, add_key, remove_key, set_value
from hotline import safe_yaml
from hotline.config import HotlineConfig, parse_config

PAGE = Path(__file__).with_name("admin.html")
Admin = Annotated[User, Depends(ADMIN)]
"""The session's user, an admin (401/403 otherwise)."""
TEXT = Field(min_length=1, max_length=safe_yaml.MAX_BYTES)


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = TEXT


class Edit(BaseModel):
    """One form change: ``set`` a value, ``add`` a key to a mapping, ``remove`` a key."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["set", "add", "remove"]
    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.*#-]+$")
    key: str | None = Field(default=None, max_length=32)
    value: str | int | float | bool | list[str] | None = None


class Edits(Text):
    edits: list[Edit] = Field(min_length=1, max_length=50)


class Apply(Text):
    base: int = Field(ge=1)
    comment: str = Field(min_length=1, max_length=COMMENT_MAX)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    base: int = Field(ge=1)
    comment: str = Field(default="", max_length=COMMENT_MAX)


RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": Problem, "description": "no such version"},
    409: {"model": Problem, "description": "another apply landed since the edit's base"},
    502: {"model": Problem, "description": "the reload failed; the previous config runs"},
}


def _invalid(exc: ConfigError) -> JSONResponse:
    problems = [{"field": f, "line": line, "message": m} for f, line, m in exc.problems]
    first = problems[0] if problems else {"field": "?", "line": None, "message": "invalid"}
    detail = f"第 {first['line'] or '?'} 行 {first['field']}: {first['message']}"
    return JSONResponse({"detail": detail, "problems": problems}, status_code=422)


def _forms(config: HotlineConfig) -> dict[str, Any]:
    """What the forms show: menus (keys, prompts), seats, throttle thresholds."""
    return {
        "menus": {
            name: {
                "prompts": list(m.prompts),
                "options": {d: str(t) for d, t in sorted(m.options.items())},
                "timeout_s": m.timeout_s,
                "retries": m.retries,
            }
            for name, m in config.menus.items()
        },
        "seats": [s.model_dump() for s in config.seats],
        "throttle": {
            "warning": config.throttle.warning.model_dump(),
            "suspension": config.throttle.suspension.model_dump(),
        },
        "targets": sorted(
            [f"seat:{s.id}" for s in config.seats]
            + [f"menu:{m}" for m in config.menus]
            + [f"emergency:{line}" for line in config.emergency.lines]
            + [f"notice:{n}" for n in config.caller_rules.out_of_scope]
        ),
    }


def admin_router(life: Lifecycle) -> APIRouter:
    """The page and ``/api/admin/config…`` over ``life``."""
    router = APIRouter()

    def version_view(v: Version, secrets: dict[str, str]) -> dict[str, Any]:
        return {**v.summary(), "text": mask(v.text, secrets)}

    def secrets_for(*texts: str) -> dict[str, str]:
        out = life.secrets()
        for text in texts:
            with contextlib.suppress(ConfigError):
                out.update(secrets_of(parse_config(text)))
        return out

    def preview_view(p: Preview, secrets: dict[str, str]) -> dict[str, Any]:
        return p.as_dict(secrets)

    def applied(v: Version, p: Preview, out: dict[str, str]) -> dict[str, Any]:
        shown = secrets_for(v.text)
        return {
            "version": v.summary(),
            "preview": preview_view(p, shown),
            "reload": {k: mask(str(o), shown) for k, o in out.items()},
        }

    @router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @router.get("/api/admin/config", responses=RESPONSES)
    async def running(_: Admin) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            v = life.running()
            config = parse_config(v.text)
            return {"version": version_view(v, secrets_of(config)), "forms": _forms(config)}

        try:
            return await asyncio.to_thread(read)
        except ConfigError as exc:  # a hand edit on disk that does not validate
            return _invalid(exc)  # type: ignore[return-value]

    @router.post("/api/admin/config/edit", responses=RESPONSES)
    async def edit(body: Edits, _: Admin) -> dict[str, Any]:
        text = body.text
        try:
            for e in body.edits:
                if e.op == "set":
                    if e.value is None:
                        raise EditError(f"{e.path}: a value is needed")
                    text = set_value(text, e.path, e.value)
                elif e.op == "add":
                    if not e.key or e.value is None or isinstance(e.value, list):
                        raise EditError(f"{e.path}: a key and a value are needed")
                    text = add_key(text, e.path, e.key, e.value)
                else:
                    text = remove_key(text, e.path)
        except (EditError, safe_yaml.YamlRefused, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return {"text": text}

    @router.post("/api/admin/config/preview", responses=RESPONSES)
    async def preview(body: Text, _: Admin) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            secrets = life.secrets()
            text = unmask(body.text, secrets)
            p = life.preview(text)
            return {**preview_view(p, secrets_for(text)), "forms": _forms(p.config)}

        try:
            return await asyncio.to_thread(run)
        except ConfigError as exc:
            return _invalid(exc)  # type: ignore[return-value]

    @router.post("/api/admin/config/apply", responses=RESPONSES)
    async def apply(body: Apply, request: Request, user: Admin) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            secrets = life.secrets()
            text = unmask(body.text, secrets)
            return applied(*life.apply(text, body.base, user.name, body.comment))

        return await _answer(request, run, f"config apply based on {body.base}")

    @router.post("/api/admin/config/rollback", responses=RESPONSES)
    async def rollback(body: Rollback, request: Request, user: Admin) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return applied(*life.rollback(body.version, body.base, user.name, body.comment))

        return await _answer(request, run, f"config rollback to {body.version}")

    @router.get("/api/admin/config/versions", responses=RESPONSES)
    async def versions(
        _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            now = life.running()
            return {
                "running": now.id,
                "versions": [v.summary() for v in life.store.history(limit)],
            }

        return await asyncio.to_thread(run)

    @router.get("/api/admin/config/versions/{version}", responses=RESPONSES)
    async def one(version: int, _: Admin) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            v = life.store.get(version)
            return version_view(v, secrets_for(v.text))

        return await _answer(None, run, "")

    @router.get("/api/admin/config/versions/{version}/diff", responses=RESPONSES)
    async def diff(
        version: int, _: Admin, against: Annotated[int | None, Query(ge=1)] = None
    ) -> dict[str, Any]:
        return await _answer(
            None, lambda: {"from": version, "to": against, "diff": life.diff(version, against)}, ""
        )

    return router


async def _answer(request: Request | None, run: Any, what: str) -> Any:
    """``run`` in a thread, its refusals as HTTP answers; ``what`` goes to the audit log."""
    try:
        out = await asyncio.to_thread(run)
    except ConfigError as exc:
        return _invalid(exc)
    except StaleBase as exc:
        raise HTTPException(409, str(exc)) from None
    except NoSuchVersion as exc:
        raise HTTPException(404, f"no version {exc.args[0]}") from None
    except ApplyFailed as exc:
        raise HTTPException(502, str(exc)) from None
    if request is not None:
        version = out.get("version", {}).get("id")
        note(request, f"{what} → version {version}")
    return out


def lifecycle_for(config_path: str) -> Lifecycle:
    """The lifecycle of the console's own config and instance (``HOTLINE_INSTANCE``,
    ``HOTLINE_RUN_DIR``, ``HOTLINE_ROOTFS`` from the stack that started the console)."""
    import os

    from admin.lifecycle import open_lifecycle

    return open_lifecycle(
        config_path,
        os.environ.get("HOTLINE_INSTANCE", "demo"),
        os.environ.get("HOTLINE_RUN_DIR") or None,
        os.environ.get("HOTLINE_ROOTFS") or None,
    )
