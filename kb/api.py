"""The knowledge base's HTTP API: one ``APIRouter`` to mount in the console.

    app.include_router(make_router(kb, current_actor, threshold=load_threshold()), prefix="/kb")

``current_actor`` is the console's auth dependency returning a :class:`kb.model.Actor`
(admin, department or agent); the router never authenticates by itself.  Errors answer
``{"detail": …}``: 404 unknown article, 403 role may not, 422 bad input (nothing changed),
413 import too large, 503 database unavailable.

==============================================  ===============================================
``GET  /search?q=&limit=``                      notes (第十三条) and ranked articles, confidence,
                                                ``self_service`` (top hit ≥ threshold)
``GET  /articles?department=&status=``          head versions
``GET  /articles/{id}``                         head and live (published) version
``GET  /articles/{id}/history``                 workflow events
``PUT  /articles/{id}``                         propose a draft (department: its own only)
``POST /articles/{id}/submit``                  draft → in review
``POST /articles/{id}/publish`` ``{"version"}``   admin: publish (synthesises the spoken answer)
``POST /articles/{id}/send-back`` ``{"comment"}`` admin: back to draft, saying why
``GET  /expired``                               the actor's expired articles (admin: all)
``GET  /export?format=csv|markdown``            published articles
``POST /import`` ``{"format", "text"}``         propose every article in it as a draft
==============================================  ===============================================
"""

# No `from __future__ import annotations`: FastAPI must see the local ActorDep annotation
# as an object, not as a string looked up in the module globals.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response

from kb.io import MAX_IMPORT_BYTES, parse_csv, parse_markdown, to_csv, to_markdown
from kb.model import Actor, KbError, KbForbidden, KbNotFound, KbUnavailable, Status
from kb.search import MAX_QUERY, Hit
from kb.service import KnowledgeBase

JsonBody = Annotated[dict[str, Any], Body()]


def _http(exc: Exception) -> HTTPException:
    if isinstance(exc, KbNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, KbForbidden):
        return HTTPException(403, str(exc))
    if isinstance(exc, KbUnavailable):
        return HTTPException(503, str(exc))
    return HTTPException(422, str(exc))


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (KbError, KbUnavailable) as exc:
        raise _http(exc) from None


def _hit(h: Hit) -> dict[str, Any]:
    return {
        "article": h.article.to_json(),
        "score": round(h.score, 3),
        "cover": round(h.cover, 3),
        "confidence": round(h.confidence, 3),
    }


def make_router(
    kb: KnowledgeBase, current_actor: Callable[..., Any], *, threshold: float
) -> APIRouter:
    """The API above over ``kb``; ``current_actor``: a FastAPI dependency → :class:`Actor`."""
    router = APIRouter(tags=["knowledge base"])
    ActorDep = Annotated[Actor, Depends(current_actor)]

    @router.get("/search")
    def search(
        _: ActorDep,
        q: Annotated[str, Query(max_length=MAX_QUERY)],
        limit: Annotated[int, Query(ge=1, le=20)] = 5,
    ) -> dict[str, Any]:
        res = _guard(lambda: kb.search(q, limit=limit))
        best = res.best
        return {
            "notes": [_hit(h) for h in res.notes],
            "hits": [_hit(h) for h in res.hits],
            "self_service": bool(best and best.confidence >= threshold),
            "threshold": threshold,
        }

    @router.get("/articles")
    def articles(
        _: ActorDep, department: str | None = None, status: Status | None = None
    ) -> dict[str, Any]:
        found = _guard(lambda: kb.store.heads(department=department, status=status))
        return {"articles": [a.to_json() for a in found]}

    @router.get("/articles/{aid}")
    def article(_: ActorDep, aid: str) -> dict[str, Any]:
        head = _guard(lambda: kb.store.get(aid))
        live = kb.store.live(aid)
        return {"head": head.to_json(), "live": live.to_json() if live else None}

    @router.get("/articles/{aid}/history")
    def history(_: ActorDep, aid: str) -> dict[str, Any]:
        return {"events": _guard(lambda: kb.store.history(aid))}

    @router.put("/articles/{aid}")
    def propose(actor: ActorDep, aid: str, body: JsonBody) -> dict[str, Any]:
        comment = body.pop("comment", "")
        if body.setdefault("id", aid) != aid:
            raise HTTPException(422, "the body's id differs from the URL's")
        return _guard(lambda: kb.store.propose(actor, body, comment)).to_json()

    @router.post("/articles/{aid}/submit")
    def submit(actor: ActorDep, aid: str) -> dict[str, Any]:
        return _guard(lambda: kb.store.submit(actor, aid)).to_json()

    @router.post("/articles/{aid}/publish")
    def publish(actor: ActorDep, aid: str, body: JsonBody) -> dict[str, Any]:
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise HTTPException(422, "'version' must be a whole number")
        p = _guard(lambda: kb.publish(actor, aid, version))
        return {
            "article": p.article.to_json(),
            "spoken_ready": p.spoken_ready,
            "seconds": round(p.seconds, 2),
            "error": p.error,
        }

    @router.post("/articles/{aid}/send-back")
    def send_back(actor: ActorDep, aid: str, body: JsonBody) -> dict[str, Any]:
        comment = body.get("comment")
        if not isinstance(comment, str):
            raise HTTPException(422, "'comment' must be text")
        return _guard(lambda: kb.store.send_back(actor, aid, comment)).to_json()

    @router.get("/expired")
    def expired(actor: ActorDep) -> dict[str, Any]:
        return {"articles": [a.to_json() for a in _guard(lambda: kb.store.expired_for(actor))]}

    @router.get("/export")
    def export(_: ActorDep, format: str = "markdown") -> Response:
        published = _guard(kb.store.published)
        if format == "csv":
            return Response(to_csv(published), media_type="text/csv; charset=utf-8")
        if format == "markdown":
            return Response(to_markdown(published), media_type="text/markdown; charset=utf-8")
        raise HTTPException(422, "format is csv or markdown")

    @router.post("/import")
    def import_(actor: ActorDep, request: Request, body: JsonBody) -> dict[str, Any]:
        if int(request.headers.get("content-length") or 0) > 2 * MAX_IMPORT_BYTES:
            raise HTTPException(413, "import too large")
        fmt, text = body.get("format"), body.get("text")
        if fmt not in ("csv", "markdown") or not isinstance(text, str):
            raise HTTPException(422, "an import is {'format': 'csv'|'markdown', 'text': str}")
        parse = parse_csv if fmt == "csv" else parse_markdown
        found = _guard(lambda: parse(text))
        drafts = _guard(lambda: kb.store.propose_all(actor, found, "import"))
        return {"proposed": [a.id for a in drafts]}

    return router
