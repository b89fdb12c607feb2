"""Knowledge-base articles (知识库, 第十一、十二、十三条), their workflow and who may act.

An :class:`Article` is one answer: a title, the questions people ask (several phrasings), a
written answer for the agent's screen, a short spoken answer for the phone, a catalogue path
(目录: 人社 › 养老保险 › 退休待遇), the owning department (承办单位), a validity window, a
source and a status.  A *note* (``kind="note"``, 第十三条) is an incident or policy notice
with a validity window that search puts above the articles for matching words.

Workflow (第十二条): a department proposes changes to its own articles (draft → in review);
an admin reviews and publishes (or sends back to draft).  Callers only ever hear the last
*published* version, and only inside its validity window; past ``valid_until`` it counts as
expired and is listed for its owner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from enum import StrEnum
from typing import Any

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
PATH_SEP = " › "
MAX_TITLE = 100
MAX_QUESTION = 100
MAX_QUESTIONS = 30
MAX_ANSWER = 4000
MAX_SPOKEN = 300
"""About a minute of speech: the phone answer must stay short."""
MAX_PATH_LEVELS = 5
MAX_PATH_PART = 20
MAX_DEPARTMENT = 50
MAX_SOURCE = 200
MAX_KEYWORDS = 30
MAX_KEYWORD = 20
MAX_ACTOR = 64
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


class KbError(ValueError):
    """Bad input for the knowledge base: nothing was changed."""


class KbNotFound(KbError):
    """No such article (or version)."""


class KbForbidden(KbError):
    """The actor's role does not allow this change."""


class KbUnavailable(RuntimeError):
    """The knowledge-base database cannot be used (locked, disk, corrupt)."""


class Status(StrEnum):
    """An article version's state; ``label`` is what the screens show."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return {"draft": "草稿", "in_review": "待审核", "published": "已发布", "expired": "已过期"}[
            self.value
        ]


class Kind(StrEnum):
    ARTICLE = "article"
    NOTE = "note"
    """第十三条 incident/policy note: shown above articles for matching words."""


class Role(StrEnum):
    ADMIN = "admin"
    """Reviews and publishes every article."""
    DEPARTMENT = "department"
    """Proposes changes to its own department's articles."""
    AGENT = "agent"
    """Searches and reads (the agent screen)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user name, a role and (for a department role) the department."""

    name: str
    role: Role
    department: str = ""

    def __post_init__(self) -> None:
        _text(self.name, "actor name", MAX_ACTOR, required=True)
        if self.role == Role.DEPARTMENT and not self.department.strip():
            raise KbError("a department actor needs its department")

    def may_edit(self, department: str) -> bool:
        if self.role == Role.ADMIN:
            return True
        return self.role == Role.DEPARTMENT and self.department == department


@dataclass(frozen=True, slots=True)
class Article:
    """One version of a knowledge-base article (see the module docstring)."""

    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    spoken: str
    path: tuple[str, ...]
    department: str
    source: str = ""
    valid_from: date | None = None
    valid_until: date | None = None
    kind: Kind = Kind.ARTICLE
    keywords: tuple[str, ...] = ()
    """Extra search words (colloquial names, abbreviations)."""
    status: Status = Status.DRAFT
    version: int = 0
    updated_by: str = ""
    updated_at: str = ""
    comment: str = field(default="", compare=False)

    @property
    def path_text(self) -> str:
        return PATH_SEP.join(self.path)

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    def content(self) -> dict[str, Any]:
        """The editable fields as JSON-able values (what a version stores)."""
        return {
            "id": self.id,
            "title": self.title,
            "questions": list(self.questions),
            "answer": self.answer,
            "spoken": self.spoken,
            "path": list(self.path),
            "department": self.department,
            "source": self.source,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "kind": self.kind.value,
            "keywords": list(self.keywords),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.content(),
            "path_text": self.path_text,
            "status": self.status.value,
            "version": self.version,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        }

    def with_meta(self, **meta: Any) -> Article:
        return replace(self, **meta)


_CONTENT_FIELDS = frozenset(
    f.name
    for f in fields(Article)
    if f.name not in ("status", "version", "updated_by", "updated_at", "comment")
)


def _text(value: Any, what: str, limit: int, *, required: bool = False, lines: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise KbError(f"{what} must be text, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise KbError(f"{what} is required")
    if len(value) > limit:
        raise KbError(f"{what} is {len(value)} characters long (at most {limit})")
    bad = _CONTROL.search(value.replace("\n", "") if lines else value)
    if bad:
        raise KbError(f"{what} contains a control character ({bad.group()!r})")
    return value


def _texts(value: Any, what: str, limit: int, count: int, *, required: bool = False) -> tuple:
    if value is None:
        value = []
    if isinstance(value, str):
        raise KbError(f"{what} must be a list of texts, not one text")
    if not isinstance(value, list | tuple):
        raise KbError(f"{what} must be a list of texts")
    if len(value) > count:
        raise KbError(f"{what}: {len(value)} entries (at most {count})")
    out = tuple(t for t in (_text(v, what, limit) for v in value) if t)
    if required and not out:
        raise KbError(f"{what}: at least one is required")
    return tuple(dict.fromkeys(out))


def _day(value: Any, what: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise KbError(f"{what} must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise KbError(f"{what} must be a date YYYY-MM-DD, not {value!r}") from None


def parse_path(value: Any) -> tuple[str, ...]:
    """A catalogue path from a list or from text (``人社 › 养老保险``, ``人社/养老保险``)."""
    if isinstance(value, str):
        value = re.split(r"\s*[›>/／]\s*", value.strip())
    parts = _texts(value, "catalogue path", MAX_PATH_PART, MAX_PATH_LEVELS, required=True)
    for p in parts:
        if re.search(r"[›>/／]", p):
            raise KbError(f"catalogue path part {p!r} contains a separator")
    return parts


def article_from(data: Mapping[str, Any]) -> Article:
    """Validate untrusted input (an API body, a CSV row, a Markdown block) into a draft.

    Raises :class:`KbError` naming the first bad field; unknown fields are refused."""
    if not isinstance(data, Mapping):
        raise KbError("an article must be an object")
    unknown = set(data) - _CONTENT_FIELDS - {"path_text", "status", "version"}
    unknown -= {"updated_by", "updated_at"}
    if unknown:
        raise KbError(f"unknown article fields: {sorted(unknown)}")
    aid = data.get("id")
    if not isinstance(aid, str) or not ID_RE.fullmatch(aid):
        raise KbError(f"article id must match {ID_RE.pattern}, not {aid!r}")
    try:
        kind = Kind(data.get("kind") or "article")
    except ValueError:
        raise KbError(f"kind must be one of {[k.value for k in Kind]}") from None
    valid_from = _day(data.get("valid_from"), "valid_from")
    valid_until = _day(data.get("valid_until"), "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        raise KbError("valid_until is before valid_from")
    if kind == Kind.NOTE and valid_until is None:
        raise KbError("a note (第十三条) needs valid_until")
    path = data.get("path")
    if path is None:
        path = data.get("path_text")
    return Article(
        id=aid,
        title=_text(data.get("title"), "title", MAX_TITLE, required=True),
        questions=_texts(
            data.get("questions"), "questions", MAX_QUESTION, MAX_QUESTIONS, required=True
        ),
        answer=_text(data.get("answer"), "answer", MAX_ANSWER, required=True, lines=True),
        spoken=_text(data.get("spoken"), "spoken answer", MAX_SPOKEN, required=True),
        path=parse_path(path),
        department=_text(data.get("department"), "department", MAX_DEPARTMENT, required=True),
        source=_text(data.get("source"), "source", MAX_SOURCE),
        valid_from=valid_from,
        valid_until=valid_until,
        kind=kind,
        keywords=_texts(data.get("keywords"), "keywords", MAX_KEYWORD, MAX_KEYWORDS),
    )
