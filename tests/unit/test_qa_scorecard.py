"""Scoring a recorded call (issue 11): answers checked against the rubric, weighted totals,
two scorers compared, and the pre-filled scorecard's proposals with their evidence."""

from __future__ import annotations

import pytest

from hotline.config import Qa
from qa.scorecard import ScoreError, check_answers, compare, prefill, total

QA = Qa()
ALL_YES = {i.id: (True if i.kind == "yesno" else 5) for i in QA.rubric}


def line(speaker: str, start: float, text: str) -> dict:
    return {"speaker": speaker, "start": start, "end": start + 2, "text": text}


GOOD_CALL = [
    line("agent", 0.5, "您好，12345热线，很高兴为您服务"),
    line("caller", 4.0, "我家楼下的饭店每天晚上油烟很大"),
    line("agent", 9.0, "您反映的是楼下饭店晚上油烟扰民的问题，对吗"),
    line("caller", 13.0, "对的"),
    line("agent", 15.0, "请问您的联系电话是13805712345吗"),
    line("agent", 30.0, "感谢您的来电，再见"),
]
RECORD = {"started_at": 100.0, "agents": [{"agent": "1001", "at": 130.0}]}


def by_item(proposals) -> dict:  # type: ignore[no-untyped-def]
    return {p.item: p for p in proposals}


def test_a_full_marks_scorecard_totals_100_and_a_bad_one_less() -> None:
    assert total(QA.rubric, check_answers(QA.rubric, ALL_YES)) == 100.0
    worse = {**ALL_YES, "forbidden": False, "attitude": 3}
    assert total(QA.rubric, check_answers(QA.rubric, worse)) == pytest.approx(
        100 * (14 - 3 - 1.5) / 14, abs=0.1
    )


@pytest.mark.parametrize(
    "answers",
    [
        {**ALL_YES, "attitude": 6},
        {**ALL_YES, "attitude": True},
        {**ALL_YES, "greeting": 1},
        {**ALL_YES, "nonsense": True},
        {k: v for k, v in ALL_YES.items() if k != "wait"},
    ],
)
def test_answers_the_rubric_does_not_allow_are_refused(answers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoreError):
        check_answers(QA.rubric, answers)


def test_two_scorers_differences_are_shown() -> None:
    a = {"scorer": "qa1", "items": ALL_YES, "total": 100.0}
    b = {"scorer": "qa2", "items": {**ALL_YES, "closing": False}, "total": 92.9}
    assert compare([a]) is None
    assert compare([a, b]) == {"scorers": ["qa1", "qa2"], "items": ["closing"], "total_gap": 7.1}


def test_a_good_call_is_proposed_yes_everywhere_with_its_evidence_lines() -> None:
    p = by_item(prefill(QA, GOOD_CALL, RECORD))
    assert {k: v.value for k, v in p.items()} == {
        "greeting": True,
        "repeat": True,
        "callback": True,
        "closing": True,
        "forbidden": True,
        "wait": True,
    }
    assert "很高兴为您服务" in p["greeting"].evidence and p["greeting"].at == 0.5
    assert "您反映的是" in p["repeat"].evidence
    assert "138****2345" in p["callback"].evidence and "13805712345" not in p["callback"].evidence
    assert "30 秒" in p["wait"].evidence


def test_a_rude_call_is_proposed_no_where_it_fails() -> None:
    rude = [
        line("agent", 1.0, "喂"),
        line("caller", 3.0, "我家楼下的饭店每天晚上油烟很大"),
        line("agent", 8.0, "这个不归我们管，你自己去找环保局"),
    ]
    p = by_item(prefill(QA, rude, {"started_at": 0.0, "agents": [{"at": 95.0}]}))
    assert p["greeting"].value is False and p["repeat"].value is False
    assert p["callback"].value is False and p["closing"].value is False
    assert p["forbidden"].value is False and "不归我们管" in p["forbidden"].evidence
    assert p["forbidden"].at == 8.0
    assert p["wait"].value is False


def test_a_demand_repeated_in_other_words_counts_as_repeated() -> None:
    calls = [
        line("caller", 1.0, "公积金提取需要什么材料"),
        line("agent", 5.0, "公积金提取需要身份证和银行卡"),
    ]
    assert by_item(prefill(QA, calls))["repeat"].value is True


def test_without_a_transcript_or_record_nothing_is_guessed() -> None:
    p = by_item(prefill(QA, []))
    assert p["greeting"].value is None and p["closing"].value is None
    assert p["wait"].value is None and p["repeat"].value is None
