"""Import and export articles as Markdown (for people) and CSV (for spreadsheets).

Markdown: one ``## <id> <title>`` block per article, then ``key: value`` lines (Chinese keys,
lists separated by ``｜``), a blank line and the written answer::

    ## gjj-rent 租房提取公积金
    目录: 公积金 › 提取 › 租房提取
    部门: 市住房公积金管理中心
    问法: 租房子可以提取公积金吗｜租房提取公积金要什么材料
    关键词: 租房提取｜房租
    有效期: 2026-01-01 ~ 2028-12-31
    来源: …
    类型: article            (or note; optional)
    电话答复: …

    written answer (several lines allowed) …

CSV: a header row with :data:`CSV_COLUMNS`; lists are ``｜``-separated.  Exported cells that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) get a leading ``'``.
Both parsers validate every article (:func:`kb.model.article_from`) and report the line of the
first bad one; nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from kb.model import Article, KbError, article_from

LIST_SEP = "｜"
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_ARTICLES = 20_000
CSV_COLUMNS = (
    "id", "title", "kind", "path", "department", "questions", "keywords", "valid_from",
    "valid_until", "source", "spoken", "answer",
)  # fmt: skip
_MD_KEYS = {
    "目录": "path",
    "部门": "department",
    "问法": "questions",
    "关键词": "keywords",
    "有效期": "validity",
    "来源": "source",
    "类型": "kind",
    "电话答复": "spoken",
}
_MD_NAMES = {v: k for k, v in _MD_KEYS.items()}
_HEADING = re.compile(r"^## +([^\s]+) +(.+?)\s*$")
_KEYLINE = re.compile(r"^([\u4e00-\u9fff]{2,4})[:：] *(.*)$")


def _check_size(text: str) -> None:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_IMPORT_BYTES:
        raise KbError(f"import is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MiB")


def _split_list(value: str) -> list[str]:
    return [p.strip() for p in value.split(LIST_SEP) if p.strip()]


def _validity(value: str, where: str) -> tuple[str | None, str | None]:
    if not value.strip():
        return None, None
    start, sep, end = value.partition("~")
    if not sep:
        raise KbError(f"{where}: 有效期 is 'YYYY-MM-DD ~ YYYY-MM-DD' (either side may be empty)")
    return start.strip() or None, end.strip() or None


def parse_markdown(text: str) -> list[Article]:
    """Articles from the Markdown format above (HTML comments and text before the first
    heading are ignored)."""
    _check_size(text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    blocks: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            blocks.append((number, [line]))
        elif blocks:
            blocks[-1][1].append(line)
    if len(blocks) > MAX_IMPORT_ARTICLES:
        raise KbError(f"more than {MAX_IMPORT_ARTICLES} articles in one import")
    out = [_markdown_block(number, lines) for number, lines in blocks]
    _no_duplicates(out)
    return out


def _markdown_block(number: int, lines: list[str]) -> Article:
    where = f"line {number}"
    head = _HEADING.match(lines[0])
    if not head:
        raise KbError(f"{where}: expected '## <id> <title>', got {lines[0]!r}")
    data: dict[str, Any] = {"id": head.group(1), "title": head.group(2)}
    i = 1
    while i < len(lines) and lines[i].strip():
        m = _KEYLINE.match(lines[i].strip())
        key = _MD_KEYS.get(m.group(1)) if m else None
        if key is None:
            raise KbError(f"line {number + i}: unknown line {lines[i]!r} (keys: {list(_MD_KEYS)})")
        if key in data:
            raise KbError(f"line {number + i}: {m.group(1)} given twice")  # type: ignore[union-attr]
        data[key] = m.group(2).strip()  # type: ignore[union-attr]
        i += 1
    data["answer"] = "\n".join(lines[i:]).strip()
    return _article(data, where)


def _article(data: dict[str, Any], where: str) -> Article:
    for key in ("questions", "keywords"):
        if key in data:
            data[key] = _split_list(data[key])
    if "validity" in data:
        data["valid_from"], data["valid_until"] = _validity(data.pop("validity"), where)
    try:
        return article_from(data)
    except KbError as exc:
        raise KbError(f"{where} ({data.get('id')!r}): {exc}") from None


def _no_duplicates(articles: Iterable[Article]) -> None:
    seen: set[str] = set()
    for a in articles:
        if a.id in seen:
            raise KbError(f"article {a.id!r} appears twice")
        seen.add(a.id)


def to_markdown(articles: Iterable[Article]) -> str:
    """The Markdown format above (round-trips through :func:`parse_markdown`)."""
    parts = []
    for a in articles:
        lines = [f"## {a.id} {a.title}", f"{_MD_NAMES['path']}: {a.path_text}"]
        lines.append(f"{_MD_NAMES['department']}: {a.department}")
        if a.kind != "article":
            lines.append(f"{_MD_NAMES['kind']}: {a.kind.value}")
        lines.append(f"{_MD_NAMES['questions']}: {LIST_SEP.join(a.questions)}")
        if a.keywords:
            lines.append(f"{_MD_NAMES['keywords']}: {LIST_SEP.join(a.keywords)}")
        if a.valid_from or a.valid_until:
            start = a.valid_from.isoformat() if a.valid_from else ""
            end = a.valid_until.isoformat() if a.valid_until else ""
            lines.append(f"{_MD_NAMES['validity']}: {start} ~ {end}")
        if a.source:
            lines.append(f"{_MD_NAMES['source']}: {a.source}")
        lines.append(f"{_MD_NAMES['spoken']}: {a.spoken}")
        parts.append("\n".join(lines) + "\n\n" + a.answer + "\n")
    return "\n".join(parts)


def parse_csv(text: str) -> list[Article]:
    """Articles from CSV with a :data:`CSV_COLUMNS` header (extra columns are refused)."""
    _check_size(text)
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = reader.fieldnames or []
    if set(header) != set(CSV_COLUMNS):
        raise KbError(f"CSV header must be {','.join(CSV_COLUMNS)}; got {','.join(header)}")
    out = []
    for row in reader:
        if len(out) >= MAX_IMPORT_ARTICLES:
            raise KbError(f"more than {MAX_IMPORT_ARTICLES} articles in one import")
        if None in row:
            raise KbError(f"CSV line {reader.line_num}: more cells than columns")
        data: dict[str, Any] = {k: _unescape(v or "") for k, v in row.items()}
        out.append(_article(data, f"CSV line {reader.line_num}"))
    _no_duplicates(out)
    return out


def to_csv(articles: Iterable[Article]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in articles:
        c = a.content()
        c["path"] = a.path_text
        c["questions"] = LIST_SEP.join(a.questions)
        c["keywords"] = LIST_SEP.join(a.keywords)
        w.writerow(_escape(str(c[k] or "")) for k in CSV_COLUMNS)
    return buf.getvalue()


def _escape(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "'") else cell


def _unescape(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "'") else cell
