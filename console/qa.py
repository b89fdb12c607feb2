"""Quality assurance in the console (issue 11): find recorded calls, play them with their
waveform and per-speaker transcript, score them against the config's rubric, export scores.

Roles ``qa`` and ``supervisor`` (every request audited by :mod:`access.web`)::

    GET  /qa                                   the page (console/qa.html)
    GET  /api/qa/calls?since=&until=&agent=&seat=&outcome=&words=&caller=
                                               recorded calls, newest first (``caller``: a
                                               full number, matched by its keyed hash)
    GET  /api/qa/calls/{call_id}               record, recordings, transcript, scores, the two
                                               scorers' difference, the pre-filled scorecard
    GET  /api/qa/recordings/{rec_id}/audio     the decrypted WAV (audited; agents: 403)
    GET  /api/qa/recordings/{rec_id}/peaks     the waveform (per channel peaks)
    PUT  /api/qa/calls/{call_id}/score         {"items": {...}, "note"} (role qa: one score
                                               per call and scorer)
    GET  /api/qa/scores.csv                    every score, one row per call and scorer
    GET  /api/qa/health                        recordings not stored (disk full, store down)
    GET  /api/qa/rubric                        the rubric
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from access.store import User
from access.web import ERRORS, note, require
from hotline.config import HotlineConfig
from hotline.privacy import normalize

PAGE = Path(__file__).with_name("qa.html")
READS_RECORDINGS = require("qa", "supervisor")
SCORES = require("qa")
CALL_ID = r"^[0-9]{1,20}\.[0-9]{1,10}$"
REC_ID = r"^[0-9]{1,20}\.[0-9]{1,10}_[0-9]{1,20}\.[0-9]{1,10}$"
OUTCOMES = ("agent", "abandoned", "emergency", "notice", "queue", "fallback", "hangup")
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class Score(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: dict[str, bool | int] = Field(max_length=50)
    note: str = Field(default="", max_length=500)


class QaServices:
    """The recordings index, the recording key, the call records and the caller hasher,
    opened from the config on first use (a missing part answers 503)."""

    def __init__(self, config: HotlineConfig) -> None:
        self.config = config
        self._index: Any = None
        self._key: Any = None
        self._calls: Any = None
        self._hasher: Any = None

    @property
    def index(self) -> Any:
        if self._index is None:
            from recordings.index import RecordingIndex

            self._index = RecordingIndex(self.config.recording.index)
        return self._index

    @property
    def key(self) -> Any:
        if self._key is None:
            from recordings.crypto import RecordingKey, RecordingKeyError

            try:
                self._key = RecordingKey.from_file(self.config.recording.key_file)
            except (OSError, RecordingKeyError) as exc:
                raise HTTPException(503, f"recording key not available: {exc}") from None
        return self._key

    @property
    def calls(self) -> Any:
        if self._calls is None:
            from calls.store import SqliteCallStore

            self._calls = SqliteCallStore(self.config.calls.path)
        return self._calls

    def caller_hash(self, number: str) -> str:
        if self._hasher is None:
            from hotline.privacy import CallerKey

            try:
                self._hasher = CallerKey.from_file(self.config.tickets.key_file)
            except (OSError, ValueError) as exc:
                raise HTTPException(503, f"PII key not available: {exc}") from None
        n = normalize(number)
        if n is None:
            raise HTTPException(422, "caller: not a phone number")
        return self._hasher.hash(n)

    async def close(self) -> None:
        if self._calls is not None:
            await self._calls.close()
        if self._index is not None:
            self._index.close()


def _row(rec: Any, index_scores: list[dict[str, Any]]) -> dict[str, Any]:
    agents = [a.get("agent", "") for a in rec.agents]
    return {
        "call_id": rec.call_id,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "caller": rec.caller.masked,
        "seat": rec.seat,
        "agents": agents,
        "outcome": rec.outcome,
        "scores": [{"scorer": s["scorer"], "total": s["total"]} for s in index_scores],
    }


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(CSV_FORMULA) else text


def make_router(config: HotlineConfig, sv: QaServices) -> APIRouter:
    router = APIRouter()
    rubric = config.qa.rubric

    @router.get("/qa", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @router.get("/api/qa/rubric", responses=ERRORS)
    async def get_rubric(_: Annotated[User, Depends(READS_RECORDINGS)]) -> dict[str, Any]:
        return {"items": [i.model_dump() for i in rubric]}

    @router.get("/api/qa/calls", responses=ERRORS)
    async def search(
        request: Request,
        _: Annotated[User, Depends(READS_RECORDINGS)],
        since: Annotated[float | None, Query(ge=0)] = None,
        until: Annotated[float | None, Query(ge=0)] = None,
        agent: Annotated[str | None, Query(pattern=r"^[0-9]{3,8}$")] = None,
        seat: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = None,
        outcome: Annotated[str | None, Query(pattern="^(" + "|".join(OUTCOMES) + ")$")] = None,
        words: Annotated[str | None, Query(max_length=100)] = None,
        caller: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        index = sv.index
        if caller:
            note(request, "search by caller number")
        caller_hash = sv.caller_hash(caller) if caller else None
        ids = await asyncio.to_thread(
            index.search_words if words and words.strip() else index.recorded_calls,
            *((words.strip(),) if words and words.strip() else ()),
        )
        out = []
        for call_id in ids:
            rec = await sv.calls.get(call_id)
            if rec is None:
                continue
            at = rec.started_at or 0.0
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            if seat and rec.seat != seat:
                continue
            if outcome and rec.outcome != outcome:
                continue
            if agent and all(a.get("agent") != agent for a in rec.agents):
                continue
            if caller_hash and rec.caller.hash != caller_hash:
                continue
            out.append(_row(rec, await asyncio.to_thread(index.scores, call_id)))
            if len(out) >= limit:
                break
        out.sort(key=lambda r: r["started_at"] or 0.0, reverse=True)
        return {"calls": out}

    @router.get("/api/qa/calls/{call_id}", responses=ERRORS)
    async def call(
        _: Annotated[User, Depends(READS_RECORDINGS)],
        call_id: Annotated[str, Depends(_call_id)],
    ) -> dict[str, Any]:
        from qa.scorecard import compare, prefill

        rec = await sv.calls.get(call_id)
        recs = await asyncio.to_thread(sv.index.of_call, call_id)
        if rec is None and not recs:
            raise HTTPException(404, "no such call")
        lines = await asyncio.to_thread(sv.index.transcript, call_id)
        scores = await asyncio.to_thread(sv.index.scores, call_id)
        record = rec.to_json() if rec is not None else {}
        record.pop("caller", None)
        return {
            "call_id": call_id,
            "caller": rec.caller.masked if rec is not None else "",
            "record": record,
            "recordings": [r.public() for r in recs],
            "transcript": lines,
            "scores": scores,
            "difference": compare(scores),
            "proposals": [p.public() for p in prefill(config.qa, lines, record)],
        }

    def _load(rec_id: str) -> tuple[Any, bytes]:
        rec = sv.index.get(rec_id)
        if rec is None or rec.state == "deleted":
            raise HTTPException(404, "no such recording")
        try:
            blob = Path(rec.path).read_bytes()
        except OSError:
            raise HTTPException(503, "the recording store cannot be read") from None
        try:
            return rec, sv.key.decrypt(blob, rec.id)
        except ValueError:
            raise HTTPException(500, "the recording does not decrypt with this key") from None

    @router.get(
        "/api/qa/recordings/{rec_id}/audio",
        response_class=Response,
        responses={**ERRORS, 200: {"content": {"audio/wav": {}}}},
    )
    async def audio(
        request: Request,
        _: Annotated[User, Depends(READS_RECORDINGS)],
        rec_id: Annotated[str, Depends(_rec_id)],
    ) -> Response:
        rec, data = await asyncio.to_thread(_load, rec_id)
        note(request, f"played recording of call {rec.call_id}")
        headers = {"Cache-Control": "no-store", "Content-Disposition": "inline"}
        return Response(data, media_type="audio/wav", headers=headers)

    @router.get("/api/qa/recordings/{rec_id}/peaks", responses=ERRORS)
    async def waveform(
        _: Annotated[User, Depends(READS_RECORDINGS)],
        rec_id: Annotated[str, Depends(_rec_id)],
        buckets: Annotated[int, Query(ge=10, le=4000)] = 600,
    ) -> dict[str, Any]:
        from speech.stereo import StereoError, peaks

        def run() -> dict[str, Any]:
            _rec, data = _load(rec_id)
            try:
                return peaks(data, buckets)
            except StereoError as exc:
                raise HTTPException(500, f"not a recording: {exc}") from None

        return await asyncio.to_thread(run)

    @router.put("/api/qa/calls/{call_id}/score", responses=ERRORS)
    async def score(
        user: Annotated[User, Depends(SCORES)],
        call_id: Annotated[str, Depends(_call_id)],
        body: Score,
    ) -> dict[str, Any]:
        from qa.scorecard import ScoreError, check_answers, compare, total

        if not await asyncio.to_thread(sv.index.of_call, call_id):
            raise HTTPException(404, "no recording of this call")
        try:
            items = check_answers(rubric, body.items)
        except ScoreError as exc:
            raise HTTPException(422, str(exc)) from None
        points = total(rubric, items)
        await asyncio.to_thread(sv.index.save_score, call_id, user.name, items, points, body.note)
        scores = await asyncio.to_thread(sv.index.scores, call_id)
        return {"call_id": call_id, "total": points, "difference": compare(scores)}

    @router.get("/api/qa/scores.csv", response_class=Response, responses=ERRORS)
    async def export(_: Annotated[User, Depends(READS_RECORDINGS)]) -> Response:
        scores = await asyncio.to_thread(sv.index.scores)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["call_id", "scorer", "scored_at", "total", *(i.id for i in rubric), "note"])
        for s in scores:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["at"]))
            w.writerow(
                [s["call_id"], _cell(s["scorer"]), at, s["total"],
                 *(s["items"].get(i.id, "") for i in rubric), _cell(s["note"])]
            )  # fmt: skip
        headers = {"Content-Disposition": 'attachment; filename="qa-scores.csv"'}
        return Response("\ufeff" + buf.getvalue(), media_type="text/csv", headers=headers)

    @router.get("/api/qa/health", responses=ERRORS)
    async def health(
        _: Annotated[User, Depends(READS_RECORDINGS)],
        hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0,
    ) -> dict[str, Any]:
        since = time.time() - hours * 3600
        return {"not_stored": await asyncio.to_thread(sv.index.failures, since)}

    return router


def _call_id(call_id: str) -> str:
    if not re.fullmatch(CALL_ID, call_id):
        raise HTTPException(422, "call_id: not a call id")
    return call_id


def _rec_id(rec_id: str) -> str:
    if not re.fullmatch(REC_ID, rec_id):
        raise HTTPException(422, "rec_id: not a recording id")
    return rec_id


def mount(app: FastAPI, config: HotlineConfig) -> QaServices:
    """The QA page and ``/api/qa/…`` on ``app``; the services it opens."""
    sv = QaServices(config)
    app.include_router(make_router(config, sv))
    app.state.qa = sv
    return sv
