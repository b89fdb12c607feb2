"""The knowledge-base store: a department proposes, an admin publishes, callers hear only what
is published and valid (第十二条); hostile imports are refused whole."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kb.io import CSV_COLUMNS, parse_csv, parse_markdown, to_csv, to_markdown
from kb.model import Actor, KbError, KbForbidden, KbNotFound, Role, Status, article_from
from kb.sqlite import SqliteKbStore

SAMPLE = Path(__file__).resolve().parents[2] / "kb" / "data" / "sample_kb.md"
TZ = ZoneInfo("Asia/Shanghai")
ADMIN = Actor("wang", Role.ADMIN)
GJJ = Actor("li", Role.DEPARTMENT, "市住房公积金管理中心")
TOPICS = ("人社", "公积金", "交通", "司法", "营商环境", "网上渠道", "医保", "教育", "综合")
RS = Actor("zhao", Role.DEPARTMENT, "市人力社保局")


def rent_article(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "gjj-rent",
        "title": "租房提取公积金",
        "questions": ["租房可以提取公积金吗", "付房租能用公积金吗"],
        "answer": "示例：无房租房的职工可申请租房提取。",
        "spoken": "示例：可以在浙里办申请租房提取。",
        "path": "公积金 › 提取 › 租房提取",
        "department": "市住房公积金管理中心",
        "valid_until": "2027-12-31",
    }
    data.update(changes)
    return data


@pytest.fixture
def clock() -> list[datetime]:
    return [datetime(2026, 12, 2, 9, 0, tzinfo=TZ)]


@pytest.fixture
def store(tmp_path: Path, clock: list[datetime]) -> SqliteKbStore:
    return SqliteKbStore(tmp_path / "kb.sqlite", clock=lambda: clock[0])


def test_department_proposes_admin_publishes_callers_see_published_version(store):
    store.propose(GJJ, rent_article())
    assert store.live("gjj-rent") is None  # a draft is not heard by callers
    assert store.submit(GJJ, "gjj-rent").status == Status.IN_REVIEW
    published = store.publish(ADMIN, "gjj-rent", version=1)
    assert published.status == Status.PUBLISHED
    assert store.live("gjj-rent").answer.startswith("示例：无房")

    store.propose(GJJ, rent_article(answer="示例：新口径。"), comment="政策调整")
    assert store.get("gjj-rent").status == Status.DRAFT
    assert store.live("gjj-rent").version == 1  # callers keep hearing v1 until v2 is published
    store.submit(GJJ, "gjj-rent")
    store.publish(ADMIN, "gjj-rent")
    assert store.live("gjj-rent").answer == "示例：新口径。"
    actions = [(e["version"], e["action"], e["actor"]) for e in store.history("gjj-rent")]
    assert actions == [
        (1, "proposed", "li"), (1, "submitted", "li"), (1, "published", "wang"),
        (2, "proposed", "li"), (2, "submitted", "li"), (2, "published", "wang"),
    ]  # fmt: skip
    assert store.version("gjj-rent", 1).answer.startswith("示例：无房")


def test_department_cannot_touch_another_departments_article(store):
    store.propose(GJJ, rent_article())
    with pytest.raises(KbForbidden):
        store.propose(RS, rent_article(department="市人力社保局"))  # cannot take it over
    with pytest.raises(KbForbidden):
        store.propose(RS, rent_article(id="rs-x"))  # cannot write for 公积金中心
    with pytest.raises(KbForbidden):
        store.submit(RS, "gjj-rent")
    assert store.get("gjj-rent").version == 1


def test_only_an_admin_publishes_and_reviews_the_version_they_read(store):
    store.propose(GJJ, rent_article())
    store.submit(GJJ, "gjj-rent")
    with pytest.raises(KbForbidden):
        store.publish(GJJ, "gjj-rent")
    with pytest.raises(KbError, match="version 1, not 3"):
        store.publish(ADMIN, "gjj-rent", version=3)
    back = store.send_back(ADMIN, "gjj-rent", "材料清单不全")
    assert back.status == Status.DRAFT
    with pytest.raises(KbError, match="say why"):
        store.send_back(ADMIN, "gjj-rent", " ")
    assert store.history("gjj-rent")[-1]["comment"] == "材料清单不全"


def test_expired_article_is_hidden_from_callers_and_listed_for_its_owner(store, clock):
    store.propose(GJJ, rent_article(valid_until="2026-12-31"))
    store.publish(ADMIN, "gjj-rent")
    assert [a.id for a in store.published()] == ["gjj-rent"]
    clock[0] = datetime(2027, 1, 2, 9, 0, tzinfo=TZ)
    expired = store.sweep_expired(ADMIN)
    assert [a.id for a in expired] == ["gjj-rent"]
    assert store.published() == [] and store.live("gjj-rent") is None
    assert [a.id for a in store.expired_for(GJJ)] == ["gjj-rent"]
    assert store.expired_for(RS) == []
    with pytest.raises(KbError, match="expired on 2026-12-31"):
        store.publish(ADMIN, "gjj-rent")
    store.propose(GJJ, rent_article(valid_until="2027-12-31"), comment="续期")
    assert store.publish(ADMIN, "gjj-rent").version == 2
    assert store.live("gjj-rent").valid_until == date(2027, 12, 31)


def test_a_pending_renewal_survives_expiry_of_the_live_text(store, clock):
    store.propose(GJJ, rent_article(valid_until="2026-12-31"))
    store.publish(ADMIN, "gjj-rent")
    store.propose(GJJ, rent_article(valid_until="2027-12-31"))
    clock[0] = datetime(2027, 1, 2, 9, 0, tzinfo=TZ)
    store.sweep_expired(ADMIN)
    assert store.live("gjj-rent") is None
    assert store.get("gjj-rent").version == 2 and store.get("gjj-rent").status == Status.DRAFT


def test_store_survives_reopening(tmp_path: Path):
    path = tmp_path / "kb.sqlite"
    s = SqliteKbStore(path)
    s.propose(GJJ, rent_article(valid_until=None))
    s.publish(ADMIN, "gjj-rent")
    s.close()
    assert SqliteKbStore(path).live("gjj-rent").title == "租房提取公积金"
    assert path.stat().st_mode & 0o007 == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "../etc"}, "article id"),
        ({"id": "A" * 10}, "article id"),
        ({"title": ""}, "title is required"),
        ({"title": "x" * 101}, "at most 100"),
        ({"questions": "一个问题"}, "list of texts"),
        ({"questions": []}, "at least one"),
        ({"questions": ["问"] * 31}, "at most 30"),
        ({"spoken": "长" * 301}, "at most 300"),
        ({"answer": "a\x00b"}, "control character"),
        ({"path": "人社 › " + "x" * 21}, "at most 20"),
        ({"path": "a/b/c/d/e/f"}, "at most 5"),
        ({"valid_from": "2027-01-01", "valid_until": "2026-01-01"}, "before valid_from"),
        ({"valid_until": "明年"}, "YYYY-MM-DD"),
        ({"kind": "note", "valid_until": None}, "needs valid_until"),
        ({"kind": "rumour"}, "kind must be"),
        ({"status": "published", "owner": "x"}, "unknown article fields"),
        ({"department": 12}, "must be text"),
    ],
)
def test_hostile_article_fields_are_refused_with_the_field_named(change, message):
    with pytest.raises(KbError, match=message):
        article_from(rent_article(**change))


def test_store_refuses_bad_actor_and_comment(store):
    with pytest.raises(KbError, match="needs its department"):
        Actor("x", Role.DEPARTMENT)
    with pytest.raises(KbError, match="at most 500"):
        store.propose(GJJ, rent_article(), comment="长" * 501)
    with pytest.raises(KbNotFound):
        store.submit(GJJ, "no-such")
    assert store.heads() == []


def test_sample_knowledge_base_round_trips_through_markdown_and_csv():
    articles = parse_markdown(SAMPLE.read_text(encoding="utf-8"))
    assert len(articles) >= 60
    assert all(a.source.startswith("示例内容") for a in articles)  # marked as SAMPLE content
    topics = {a.path[0] for a in articles}
    assert set(TOPICS) <= topics
    assert parse_markdown(to_markdown(articles)) == articles
    assert parse_csv(to_csv(articles)) == articles


def test_csv_export_defuses_spreadsheet_formulas():
    a = article_from(rent_article(title='=HYPERLINK("http://x")', source="@SUM(A1)"))
    text = to_csv([a])
    assert "'=HYPERLINK" in text and "'@SUM" in text
    assert parse_csv(text)[0].title == a.title


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,title\ngjj,x\n", "CSV header"),
        (",".join(CSV_COLUMNS) + "\n" + "a," * 12 + "extra\n", "more cells"),
        (",".join(CSV_COLUMNS) + "\nbad id,t,,a,d,q,,,,,s,a\n", "CSV line 2"),
    ],
)
def test_bad_csv_is_refused_naming_the_line(text, message):
    with pytest.raises(KbError, match=message):
        parse_csv(text)


def test_bad_markdown_is_refused_naming_the_line():
    good = to_markdown([article_from(rent_article())])
    with pytest.raises(KbError, match="line 3: unknown line"):
        parse_markdown(good.replace("部门:", "科室:"))
    with pytest.raises(KbError, match="appears twice"):
        parse_markdown(good + "\n" + good)
    with pytest.raises(KbError, match="有效期"):
        parse_markdown(good.replace("有效期:  ~ 2027-12-31", "有效期: 2027-12-31"))
