"""Field extraction on whatever a recogniser, a caller or an attacker hands it: never an
exception, always a JSON-able draft, bounded time, and no identity number left readable."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.config import HotlineConfig, load_config
from hotline.privacy import mask_text
from speech.fields import MAX_ANALYSED, MAX_DEMANDS, extract

REPO = Path(__file__).resolve().parents[2]
DIGITS = "0123456789零〇一二三四五六七八九幺两"
LONG_DIGIT_RUN = re.compile(f"[{DIGITS}]{{15,}}")
BUDGET_S = 3.0
"""Generous: the point is that no input makes extraction run away (it takes milliseconds)."""


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(REPO / "hotline.yaml")


def assert_sound(draft: dict) -> None:
    """The draft survives storage as UTF-8 JSON and keeps no long number readable."""
    stored = json.dumps(draft, ensure_ascii=False).encode("utf-8")
    assert json.loads(stored) == draft
    for text in (draft["transcript"], draft["summary"], *(d["text"] for d in draft["demands"])):
        assert not LONG_DIGIT_RUN.search(text), text[:80]
    assert all(0.0 <= v <= 1.0 for v in draft["confidence"].values())
    if draft["callback"] is not None:
        assert draft["callback"].isdigit()


@pytest.mark.parametrize(
    "said",
    [
        "",
        "   ",
        "\x00\x01\x02公积金\x1b[31m\x7f",
        "😀🔥🚒 着火了 🔥🔥",
        "\ud800公积金\udfff",
        "公\u200b积\u200d金\ufeff怎么提取",
        "ＧＯＮＧＪＩＪＩＮ　１３８０５７１２３４５",
        "مرحبا 公积金 שלום Привет 咨询",
        "\u202e金积公\u202c 反向文字",
        "𠀀𠀁𪚥 生僻字 𰻞𰻞面",
        "。。。，，，！！！？？？",
        "另外另外另外另外",
        "一一一一一一一一一一一一一一一一一一一一一一一一一一一一一一",
        "XXXXXXXXXXXXXXXXXXXXXXXX叉叉叉叉",
        "订单号123456789012345678，验证码 9 9 9 9 9 9",
    ],
)
def test_odd_text_still_gives_a_draft(said: str, config) -> None:
    assert_sound(extract(said, config))


def test_zero_width_characters_do_not_hide_a_keyword(config) -> None:
    assert extract("公\u200b积\u200d金\ufeff怎么提取", config)["seat"] == "gjj"


def test_full_width_digits_are_digits(config) -> None:
    assert extract("电话１３８０５７１２３４５", config)["callback"] == "13805712345"


@pytest.mark.parametrize("value", [None, 12345, b"\xe5\x85\xac\xe7\xa7\xaf\xe9\x87\x91", 3.5])
def test_not_a_string_is_read_as_one(value: object, config) -> None:
    draft = extract(value, config)  # type: ignore[arg-type]
    assert_sound(draft)


def test_bytes_are_decoded(config) -> None:
    assert extract("公积金怎么提取".encode(), config)["seat"] == "gjj"  # type: ignore[arg-type]


def test_object_whose_str_raises_gives_an_empty_draft(config) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    draft = extract(Broken(), config)  # type: ignore[arg-type]
    assert draft["transcript"] == "" and draft["seat"] is None


@pytest.mark.parametrize(
    "said",
    [
        "我要投诉公积金一三八零五七一二三四五😀\x07拱墅区着火" * 4000,
        "一" * 100_000,
        "路" * 100_000,
        "文三" * 50_000 + "路",
        "另外公积金。" * 20_000,
        "流" + "了" * 100_000 + "血",
        "3" * 100_000,
        "公积金" * 40_000,
        "A" * 100_000,
    ],
    ids=["mixed", "yi", "lu", "wensan", "demands", "gap", "threes", "gjj", "latin"],
)
def test_very_long_text_is_analysed_in_bounded_time(said: str, config) -> None:
    start = time.perf_counter()
    draft = extract(said, config)
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S
    assert draft["truncated"] is True
    assert len(draft["demands"]) <= MAX_DEMANDS
    assert_sound(draft)


def test_long_transcript_is_kept_whole_but_masked(config) -> None:
    tail = "，我的身份证号是三三零一零六一九九零零一零一一二三四"
    said = "我要投诉公积金" * (MAX_ANALYSED // 7 + 10) + tail
    draft = extract(said, config)
    assert len(draft["transcript"]) == len(said)
    assert draft["transcript"].endswith("，我的身份证号是**************1234")


def test_a_run_of_digits_that_looks_like_an_id_is_masked_not_called_back(config) -> None:
    draft = extract("我的号码是110101199003077777", config)
    assert draft["callback"] is None
    assert "110101199003077777" not in draft["transcript"]


def test_an_emergency_at_the_start_of_a_flood_is_still_heard(config) -> None:
    draft = extract("着火了！" + "啊" * 100_000, config)
    assert draft["emergency"] == "119"


ALPHABET = st.sampled_from(
    list(DIGITS + "Xx叉 -，。、")
    + list("公积金咨询投诉举报着火拱墅区西湖文三路号另外我叫王先生电话身份证")
    + ["😀", "\x00", "\u200b", "\ud800", "Ａ", "ا"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=200).map("".join))
def test_any_mix_of_digits_and_keywords_gives_a_sound_draft(config, said: str) -> None:
    assert_sound(extract(said, config))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_unicode_text_gives_a_sound_draft(config, said: str) -> None:
    assert_sound(extract(said, config))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(DIGITS + " -，、Xx叉")), max_size=80).map("".join))
def test_masking_leaves_no_fifteen_digits_in_a_row(said: str) -> None:
    masked = mask_text(said)
    assert not LONG_DIGIT_RUN.search(masked)
    assert len(masked) <= len(said)
