"""Field extraction over the hotline test utterances (../shared/audio/hotline/expected.tsv).

Each utterance is checked as written, as a recogniser would mishear it (domain words replaced
by the same- or similar-sounding characters Whisper produces, :data:`MISHEARINGS`), and in
traditional characters (Whisper often answers in 繁體).  Per-field accuracy is printed
(``pytest -s``); floors keep it from sliding.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import opencc
import pytest

from hotline.config import HotlineConfig, load_config
from speech.fields import extract

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
EXPECTED = SHARED / "audio" / "hotline" / "expected.tsv"
FIELDS = ("type", "seat", "department", "district", "emergency", "scope", "callback")

MISHEARINGS: dict[str, tuple[str, ...]] = {
    # the ones observed with whisper-base on the hotline audio (../shared/notes/speech.md)
    "公积金": ("攻击金", "工机金", "公基金"),
    "咨询": ("自行", "资讯", "咨讯"),
    "举报": ("擠爆", "举保", "巨报"),
    "着火": ("找火", "着伙"),
    "噪音": ("造音", "燥音"),
    "拱墅区": ("狗受区", "拱树区", "共墅区"),
    # further same-sounding (or fuzzy-pinyin) confusions of the words these calls hinge on
    "投诉": ("投宿", "头诉"),
    "医保": ("一保", "依保"),
    "社保卡": ("设保卡", "社宝卡"),
    "限行": ("现行", "线行"),
    "学区": ("学去", "雪区"),
    "营业执照": ("营业之照", "营业直照"),
    "拖欠": ("脱欠",),
    "建议": ("见意", "健议"),
    "表扬": ("表演", "表阳"),
    "起诉": ("起速", "企诉"),
    "打架": ("打加",),
    "西湖区": ("西胡区", "希湖区"),
    "滨江区": ("宾江区", "彬江区"),
    "公交站": ("公交展", "攻交站"),
    "流了很多血": ("留了很多血",),
}
"""Correct word → what a recogniser wrote instead."""

RECOGNISED: list[tuple[str, str, str]] = [
    ("dev01", "8k", "我要投诉我们小区楼下的饭店油烟太大,影响军民休息地址在西湖区闻翻路。"),
    ("dev01", "16k", "我要投诉我们小区楼下的饭店油烟太大,影响居民休息,地址在西湖区、文山路。"),
    ("dev02", "8k", "我想自行一下工基金体体使需要哪些材料。"),
    ("dev02", "16k", "我想自寻医下工基金提取需要哪些材料。"),
    ("dev03", "8k", "你好,我想问一下稍微医保怎么交费。"),
    ("dev03", "16k", "你好,我想问一下稍耳医保怎么交费。"),
    ("dev04", "8k", "我要挤报一个工地晚上11点还在施工,噪音特别大,再狗受气。"),
    ("dev04", "16k", "我要举报一个工地晚上十一点还在施工、噪音特别大、再狗数区。"),
    ("dev05", "8k", "我家旁边找火冷,会很大,快来人家。"),
    ("dev05", "16k", "我家旁边找火冷,或很大,快来人家。"),
    ("dev06", "8k", "有岩在马路上被车撞了、留了很多血。"),
    ("dev06", "16k", "有人在马路上被车撞冷、留了很多血。"),
    ("dev07", "8k", "我想自行于下外地车辆的现行政策。"),
    ("dev07", "16k", "我想自寻医下外地车辆的线行政策。"),
    ("dev08", "8k", "公司拖欠我三个业工资,我要投诉。"),
    ("dev08", "16k", "公司拖欠我三个月公资,我要投诉。"),
    ("dev09", "8k", "我建议在我们小区门口都是一个公交站。"),
    ("dev09", "16k", "我建议在我们小区门口增是一个公交站。"),
    ("dev10", "8k", "我想办理营业执照,不知道去哪里办?"),
    ("dev10", "16k", "我想办理营业执照,不知道去哪里班?"),
    ("dev11", "8k", "我要起诉我的临区,你们能帮我吗?"),
    ("dev11", "16k", "我要起诉我的临居,你们能帮我吗?"),
    ("dev12", "8k", "我的手机后码是13805-712-345。新给我回电话。"),
    ("dev12", "16k", "我的手机后码是13805712345, 请给我回电话。"),
    ("dev13", "8k", "我想问一下社保卡丢了怎么补办?另外工区金贷款额度是多少?"),
    ("dev13", "16k", "我想问医下社保卡丢了怎么补办?另外工资金贷款额都市多少?"),
    ("dev14", "8k", "小孩上学的学区是怎么花分的影?"),
    ("dev14", "16k", "小孩上学的学区是怎么花分的?"),
    ("dev15", "8k", "我要表扬医下并将7周5服务中心的工作人员。"),
    ("dev15", "16k", "我要表扬医下并将区政府服务中心的工作人员。"),
    ("dev16", "8k", "油烟在街上打架,还拿着包子。"),
    ("dev16", "16k", "有人在街上打架,还拿着刀。"),
]
"""What whisper-base (``speech.recognize.transcribe``, the repo's config) wrote for each test
recording, 8 kHz phone band and 16 kHz, when this table was made (2026-11-22)."""


def _realigned(row: dict[str, str], config_scopes: set[str]) -> dict[str, str]:
    """Undo a stray tab: in the shared file dev11's 诉讼 sits in the callback column and dev12's
    number in the notes column, one cell right of where the header puts them."""
    if row["callback"] in config_scopes and not row["scope"]:
        row["scope"], row["callback"] = row["callback"], ""
    if row["notes"].isdigit() and not row["callback"]:
        row["callback"], row["notes"] = row["notes"], ""
    return row


def _rows() -> list[dict[str, str]]:
    lines = EXPECTED.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    scopes = {r.name for r in load_config(REPO / "hotline.yaml").caller_rules.out_of_scope.values()}
    rows = []
    for line in lines[1:]:
        if line.strip():
            cells = line.split("\t")
            row = dict(zip(head, cells + [""] * (len(head) - len(cells)), strict=False))
            rows.append(_realigned(row, scopes))
    return rows


ROWS = _rows()


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(REPO / "hotline.yaml")


def _seat_ids(config: HotlineConfig) -> dict[str, str]:
    """Chinese seat name as written in expected.tsv (人社, 综合) → config seat id."""
    return {s.name.removesuffix("专席").removesuffix("席"): s.id for s in config.seats}


def field_results(draft: dict, row: dict[str, str], config: HotlineConfig) -> dict[str, bool]:
    """Which expected fields the draft got right (empty cell = nothing must be extracted)."""
    demands = draft["demands"]
    seat_ids = _seat_ids(config)
    ok: dict[str, bool] = {}
    ok["type"] = (draft["type"] or "") == row["type"]
    want_seats = [s for s in row["seat"].split(";") if s]
    ok["seat"] = [d["seat"] for d in demands] == [seat_ids[s] for s in want_seats] and (
        bool(want_seats) or draft["seat"] is None
    )
    want_depts = [set(d.split("|")) for d in row["department"].split(";")] if row["seat"] else []
    got_depts = [d["department"] for d in demands]
    ok["department"] = len(got_depts) == len(want_depts) and all(
        (g or "") in w or (not g and w == {""}) for g, w in zip(got_depts, want_depts, strict=True)
    )
    ok["district"] = (draft["district"] or "") == row["district"]
    lines = {row["emergency"]} | {n.split()[-1] for n in [row["notes"]] if n.startswith("also ")}
    ok["emergency"] = (draft["emergency"] or "") in lines
    scope = draft["out_of_scope"]
    ok["scope"] = (config.caller_rules.out_of_scope[scope].name if scope else "") == row[
        "scope"
    ] and draft["out_of_scope_name"] == (row["scope"] or None)
    ok["callback"] = (draft["callback"] or "") == row["callback"]
    return ok


def misheard_variants() -> list[tuple[str, str, str]]:
    """(row id, what was misheard, text): one confusion at a time, then all at once."""
    out = []
    for row in ROWS:
        text = row["text"]
        every = text
        for word, heard in MISHEARINGS.items():
            if word in text:
                for h in heard:
                    out.append((row["id"], f"{word}→{h}", text.replace(word, h)))
                every = every.replace(word, heard[0])
        if every != text:
            out.append((row["id"], "all", every))
    return out


VARIANTS = misheard_variants()
BY_ID = {r["id"]: r for r in ROWS}


def _accuracy(texts: list[tuple[str, str]], config: HotlineConfig, label: str) -> float:
    """Print per-field accuracy; return the share of utterances with every field right."""
    right: Counter[str] = Counter()
    whole = 0
    for row_id, text in texts:
        ok = field_results(extract(text, config), BY_ID[row_id], config)
        right.update(k for k, v in ok.items() if v)
        whole += all(ok.values())
    n = len(texts)
    cells = "  ".join(f"{f} {right[f] / n:.0%}" for f in FIELDS)
    print(f"\n{label}: {n} utterances, all fields right {whole}/{n} ({whole / n:.0%}); {cells}")
    return whole / n


def test_expected_file_has_the_sixteen_utterances() -> None:
    assert len(ROWS) == 16
    assert all(r["text"] for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_clean_utterance_gives_the_expected_ticket(row: dict[str, str], config) -> None:
    draft = extract(row["text"], config)
    ok = field_results(draft, row, config)
    wrong = {
        f: draft.get(f if f != "scope" else "out_of_scope_name") for f, v in ok.items() if not v
    }
    assert not wrong, f"{row['id']} {row['text']}: wrong {wrong}; demands {draft['demands']}"


@pytest.mark.parametrize(
    ("row_id", "confusion", "text"), VARIANTS, ids=[f"{v[0]}:{v[1]}" for v in VARIANTS]
)
def test_misheard_utterance_still_gives_the_expected_ticket(
    row_id: str, confusion: str, text: str, config
) -> None:
    draft = extract(text, config)
    ok = field_results(draft, BY_ID[row_id], config)
    wrong = [f for f, v in ok.items() if not v]
    assert not wrong, f"{text}: wrong {wrong}: {draft}"


def test_traditional_characters_give_the_same_tickets(config) -> None:
    s2t = opencc.OpenCC("s2t")
    for row in ROWS:
        text = s2t.convert(row["text"])
        ok = field_results(extract(text, config), row, config)
        assert all(ok.values()), f"{text}: wrong {[f for f, v in ok.items() if not v]}"


def test_accuracy_floors(config) -> None:
    s2t = opencc.OpenCC("s2t")
    clean = _accuracy([(r["id"], r["text"]) for r in ROWS], config, "clean text")
    misheard = _accuracy([(v[0], v[2]) for v in VARIANTS], config, "misheard variants")
    trad = _accuracy([(r["id"], s2t.convert(r["text"])) for r in ROWS], config, "traditional")
    assert clean == 1.0
    assert trad == 1.0
    assert misheard >= 0.9


def test_misheard_domain_words_lower_the_confidence(config) -> None:
    """A guess from sound must say it is less sure than the word itself."""
    sure = extract("我想咨询一下公积金。", config)
    heard = extract("我想自行一下攻击金。", config)
    assert heard["seat"] == sure["seat"] == "gjj"
    assert heard["confidence"]["seat"] < sure["confidence"]["seat"]
    assert heard["confidence"]["type"] < sure["confidence"]["type"]


def test_recognised_transcripts_give_the_expected_tickets(config) -> None:
    """Real recogniser output (:data:`RECOGNISED`): 30 of 32 right when measured; the two
    misses are 并将7周5 (滨江区, lost) and 工资金 (公积金 heard as 工资 + 金)."""
    share = _accuracy([(r[0], r[2]) for r in RECOGNISED], config, "whisper-base transcripts")
    assert share >= 28 / 32


@pytest.mark.speech
def test_recognising_the_recordings_gives_the_expected_tickets(config) -> None:
    """The whole path on the real model: recording → transcript → ticket draft."""
    from speech.recognize import transcribe

    texts = []
    for row in ROWS:
        for suffix in ("", "_16k"):
            wav = EXPECTED.parent / f"{row['id']}{suffix}.wav"
            texts.append((row["id"], transcribe(wav, config).text))
    share = _accuracy(texts, config, "recognised recordings (live)")
    assert share >= 26 / 32
