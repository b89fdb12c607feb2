"""Mandarin numbers and dates as sequences of prompt names, spoken by concatenation.

The prompt set (``sounds/prompts.tsv``): ``digit-0`` … ``digit-9`` (零 … 九), ``num-10`` 十,
``num-100`` 百, ``num-1000`` 千, ``num-10000`` 万, ``year`` 年, ``month`` 月, ``day`` 日.

>>> say_number(105)
('digit-1', 'num-100', 'digit-0', 'digit-5')
"""

from __future__ import annotations

from datetime import date

_UNITS = ((1000, "num-1000"), (100, "num-100"), (10, "num-10"), (1, ""))
MAX_NUMBER = 99_999_999


def _digit(d: int) -> str:
    return f"digit-{d}"


def _below_10000(n: int, *, leading: bool) -> list[str]:
    """1–9999 within a larger number; ``leading`` drops the 一 of 一十 (12 → 十二)."""
    out: list[str] = []
    started = zero_pending = False
    for value, unit in _UNITS:
        d = n // value % 10
        if d == 0:
            zero_pending = started
            continue
        if zero_pending:
            out.append(_digit(0))  # 一百零五: one 零 for any run of zeros inside
            zero_pending = False
        if not (unit == "num-10" and d == 1 and leading and not started):
            out.append(_digit(d))
        if unit:
            out.append(unit)
        started = True
    return out


def say_number(n: int) -> tuple[str, ...]:
    """A cardinal number 0–99 999 999 as prompt names (12 → 十二, 20 → 二十, 105 → 一百零五,
    10 005 → 一万零五).  Raises ``TypeError`` for a non-int, ``ValueError`` out of range."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"say_number needs an int, got {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"say_number covers 0..{MAX_NUMBER}, got {n}")
    if n == 0:
        return (_digit(0),)
    high, low = divmod(n, 10_000)
    if not high:
        return tuple(_below_10000(low, leading=True))
    out = [*_below_10000(high, leading=True), "num-10000"]
    if low:
        if low < 1000:
            out.append(_digit(0))
        out += _below_10000(low, leading=False)
    return tuple(out)


def say_date(day: date) -> tuple[str, ...]:
    """A date as 二〇二六年十一月二十二日: the year digit by digit, month and day as numbers.

    Accepts ``date`` and ``datetime`` (its date part)."""
    if not isinstance(day, date):
        raise TypeError(f"say_date needs a date, got {type(day).__name__}")
    year = tuple(_digit(int(d)) for d in str(day.year))
    return (*year, "year", *say_number(day.month), "month", *say_number(day.day), "day")
