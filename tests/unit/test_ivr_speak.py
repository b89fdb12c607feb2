"""Numbers and dates spoken by concatenating prompts (ticket counts, 受理日期, 反馈日期)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.speak import MAX_NUMBER, say_date, say_number

CHARS = {
    **{f"digit-{d}": "零一二三四五六七八九"[d] for d in range(10)},
    "num-10": "十",
    "num-100": "百",
    "num-1000": "千",
    "num-10000": "万",
    "year": "年",
    "month": "月",
    "day": "日",
}


def spoken(names: tuple[str, ...]) -> str:
    """What the caller hears, written in characters."""
    return "".join(CHARS[n] for n in names)


def parse_chinese(text: str) -> int:
    """An independent reading of a Chinese numeral (一百零五 → 105), to check round trips."""
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")}
    units = {"十": 10, "百": 100, "千": 1000}
    total = section = number = 0
    for char in text:
        if char in digits:
            number = digits[char]
        elif char in units:
            section += (number or 1) * units[char]
            number = 0
        elif char == "万":
            total += (section + number) * 10_000
            section = number = 0
        else:
            raise ValueError(char)
    return total + section + number


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "零"),
        (7, "七"),
        (10, "十"),
        (12, "十二"),
        (20, "二十"),
        (31, "三十一"),
        (100, "一百"),
        (105, "一百零五"),
        (110, "一百一十"),
        (1005, "一千零五"),
        (1050, "一千零五十"),
        (2026, "二千零二十六"),
        (10_005, "一万零五"),
        (100_000, "十万"),
        (1_000_010, "一百万零一十"),
        (MAX_NUMBER, "九千九百九十九万九千九百九十九"),
    ],
)
def test_numbers_are_spoken_as_in_mandarin(n: int, text: str) -> None:
    assert spoken(say_number(n)) == text


@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_every_number_reads_back_to_itself(n: int) -> None:
    text = spoken(say_number(n))
    assert parse_chinese(text) == n
    assert "零零" not in text
    assert n == 0 or not text.endswith("零")
    assert not text.startswith("一十")


@pytest.mark.parametrize("bad", [-1, MAX_NUMBER + 1])
def test_numbers_out_of_range_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="covers"):
        say_number(bad)


@pytest.mark.parametrize("bad", [1.5, "12", True, None])
def test_non_integers_are_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        say_number(bad)  # type: ignore[arg-type]


def test_date_is_spoken_like_a_hotline_agent_would() -> None:
    assert spoken(say_date(date(2026, 11, 22))) == "二零二六年十一月二十二日"
    assert spoken(say_date(date(2027, 1, 5))) == "二零二七年一月五日"
    assert spoken(say_date(date(2030, 10, 10))) == "二零三零年十月十日"


def test_a_datetime_is_spoken_by_its_date() -> None:
    assert say_date(datetime(2026, 3, 1, 23, 59)) == say_date(date(2026, 3, 1))


@given(st.dates(min_value=date(1000, 1, 1)))
def test_every_date_reads_back(day: date) -> None:
    text = spoken(say_date(day))
    year, rest = text.split("年")
    month, rest = rest.split("月")
    assert rest.endswith("日")
    assert int("".join(str("零一二三四五六七八九".index(c)) for c in year)) == day.year
    assert parse_chinese(month) == day.month
    assert parse_chinese(rest[:-1]) == day.day


def test_a_string_is_not_a_date() -> None:
    with pytest.raises(TypeError):
        say_date("2026-11-22")  # type: ignore[arg-type]
