"""Seat business hours and mainland China's holidays with 调休 (ground floor, pure but for
:meth:`HolidayCalendar.load`).

:func:`is_open` answers "is this seat staffed at this moment": a statutory holiday closes a
seat (unless it opens on holidays), a 调休 make-up working day opens it with the hours of a
normal working day (``makeup_as``), any other day follows its weekday's hours.  A seat
without hours in ``calendar.seats`` is always open.  The holiday data is a YAML file
(``hotline/data/holidays_cn.yaml``, format in docs/calendar.md); a file that cannot be read
counts as "no holidays" (fail open: the seats keep their weekday hours), never as closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from hotline import safe_yaml
from hotline.config import DayHours, HotlineConfig, SeatHours

log = logging.getLogger("hotline.calendar")

DEFAULT_FILE = Path(__file__).with_name("data") / "holidays_cn.yaml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SPAN_DAYS = 31
"""The longest holiday span accepted from the data file."""


class CalendarError(ValueError):
    """A holiday data file that cannot be used (what and where)."""


@dataclass(frozen=True)
class HolidayCalendar:
    """Holiday (``off``) and 调休 make-up working (``work``) days, each with its holiday name."""

    off: dict[date, str] = field(default_factory=dict)
    work: dict[date, str] = field(default_factory=dict)
    provisional_years: frozenset[int] = frozenset()
    """Years not taken from a State Council notice (the file says so)."""

    def day_kind(self, day: date) -> str:
        """``holiday``, ``makeup`` (调休 working day) or ``normal``."""
        if day in self.work:
            return "makeup"
        return "holiday" if day in self.off else "normal"

    @classmethod
    def parse(cls, data: object, where: str = "<holidays>") -> HolidayCalendar:
        """Validate the file's document; raise :class:`CalendarError` naming the entry."""
        if not isinstance(data, dict) or not isinstance(data.get("years"), dict):
            raise CalendarError(f"{where}: a mapping with 'years' is required")
        off: dict[date, str] = {}
        work: dict[date, str] = {}
        provisional: set[int] = set()
        for year, body in data["years"].items():
            at = f"{where}: years.{year}"
            if not isinstance(year, int) or not 2000 <= year <= 2100:
                raise CalendarError(f"{at}: the year must be a number 2000-2100")
            if not isinstance(body, dict) or not isinstance(body.get("source"), str):
                raise CalendarError(f"{at}: needs 'source' (the notice it comes from)")
            if body.get("provisional", False) is True:
                provisional.add(year)
            for i, entry in enumerate(body.get("holidays") or ()):
                name, span, make_up = _entry(entry, f"{at}.holidays.{i}")
                first, last = span
                if first.year != year or last < first or (last - first).days > MAX_SPAN_DAYS:
                    raise CalendarError(f"{at}.holidays.{i}: days must be [first, last] in {year}")
                for n in range((last - first).days + 1):
                    off[first + timedelta(days=n)] = name
                for day in make_up:
                    work[day] = name
        both = sorted(set(off) & set(work))
        if both:
            raise CalendarError(f"{where}: {both[0]} is both a holiday and a make-up working day")
        return cls(off, work, frozenset(provisional))

    @staticmethod
    def load(path: str | Path = DEFAULT_FILE) -> HolidayCalendar:
        """The calendar in ``path`` (re-read when the file changes); an unreadable or invalid
        file is logged and gives an empty calendar (fail open)."""
        p = Path(path)
        try:
            stamp = p.stat().st_mtime_ns
        except OSError as exc:
            log.error("holiday file %s unreadable (%s): no holidays apply", p, exc.strerror)
            return HolidayCalendar()
        try:
            return _load(str(p), stamp)
        except (CalendarError, OSError, yaml.YAMLError, ValueError) as exc:
            log.error("holiday file %s refused (%s): no holidays apply", p, exc)
            return HolidayCalendar()


@lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int) -> HolidayCalendar:
    return HolidayCalendar.parse(safe_yaml.load_file(path), path)


def _day(value: object, where: str) -> date:
    if isinstance(value, datetime):
        raise CalendarError(f"{where}: a date (YYYY-MM-DD), not a time")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: not a date: {str(value)[:40]!r}") from None


def _entry(entry: object, where: str) -> tuple[str, tuple[date, date], list[date]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise CalendarError(f"{where}: needs a name")
    span = entry.get("days")
    if not isinstance(span, list) or len(span) != 2:
        raise CalendarError(f"{where}: days must be [first, last]")
    work = entry.get("work") or []
    if not isinstance(work, list):
        raise CalendarError(f"{where}: work must be a list of dates")
    days = [_day(d, f"{where}.work") for d in work]
    for d in days:
        if d.weekday() < 5:
            raise CalendarError(f"{where}: make-up working day {d} is not a Saturday or Sunday")
    return entry["name"][:32], (_day(span[0], where), _day(span[1], where)), days


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def weekday_open(spans: tuple[DayHours, ...], today: str, yesterday: str, minute: int) -> bool:
    """Whether ``minute`` (of the day) of ``today`` falls in one of ``spans``; a span closing
    at or before its opening runs past midnight (from ``yesterday``)."""
    for span in spans:
        start, end = _minutes(span.open), _minutes(span.close)
        if start < end:
            if today in span.days and start <= minute < end:
                return True
        elif (today in span.days and minute >= start) or (yesterday in span.days and minute < end):
            return True
    return False


def zone(name: str) -> ZoneInfo | None:
    """The timezone, or ``None`` for an unknown name (callers then fail open)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def seat_open(hours: SeatHours, holidays: HolidayCalendar, local: datetime) -> bool:
    """Whether a seat with ``hours`` is staffed at ``local`` (the hotline's local time)."""
    kind = holidays.day_kind(local.date())
    if kind == "holiday" and hours.holidays == "closed":
        return False
    weekday = local.weekday()
    today = DAYS[weekday]
    yesterday = DAYS[(weekday - 1) % 7]
    if kind == "makeup":
        today = hours.makeup_as
        yesterday = DAYS[(DAYS.index(today) - 1) % 7]
    return weekday_open(hours.hours, today, yesterday, local.hour * 60 + local.minute)


def is_open(config: HotlineConfig, seat: str, when: datetime, holidays: HolidayCalendar) -> bool:
    """Whether ``seat`` is staffed at ``when`` (aware: converted to the hotline's timezone;
    naive: taken as local).  A seat without ``calendar.seats`` hours, or an unknown
    timezone, counts as open (fail open)."""
    hours = config.calendar.seats.get(seat)
    if hours is None:
        return True
    if when.tzinfo is not None:
        tz = zone(config.business_hours.timezone)
        if tz is None:
            return True
        when = when.astimezone(tz)
    return seat_open(hours, holidays, when)
