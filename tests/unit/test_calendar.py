"""Seat hours, statutory holidays and 调休 days, and where a caller goes when a seat is closed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hotline import safe_yaml
from hotline.calendar import DEFAULT_FILE, CalendarError, HolidayCalendar, is_open
from hotline.config import HotlineConfig, parse_config
from ivr.actions import (
    TERMINAL,
    CallInfo,
    Collect,
    Digits,
    Done,
    Hangup,
    Heard,
    Listen,
    Play,
    Route,
)
from ivr.flow import call_flow

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
BEIJING = timezone(timedelta(hours=8))
WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "17:00"}
NATIONAL_DAY = datetime(2026, 10, 2, 10, 0, tzinfo=BEIJING)  # Friday, 国庆节
MAKEUP_SATURDAY = datetime(2026, 10, 10, 10, 0, tzinfo=BEIJING)  # 调休: a working Saturday
PLAIN_SATURDAY = datetime(2026, 10, 17, 10, 0, tzinfo=BEIJING)
PLAIN_MONDAY = datetime(2026, 10, 12, 10, 0, tzinfo=BEIJING)


def config_with(seats: dict[str, Any]) -> HotlineConfig:
    data = safe_yaml.load_file(EXAMPLE)
    data["speech"] = {"mode": "off"}
    data["calendar"] = {"seats": seats}
    return HotlineConfig.model_validate(data)


@pytest.fixture(scope="module")
def holidays() -> HolidayCalendar:
    return HolidayCalendar.load(DEFAULT_FILE)


@pytest.fixture(scope="module")
def gjj_office_hours() -> HotlineConfig:
    """公积金 answers 9-17 on working days; closed, its callers go to the 综合席."""
    return config_with({"gjj": {"hours": [WEEKDAYS]}})


def place_call(
    config: HotlineConfig,
    keys: Iterable[str],
    when: datetime,
    holidays: HolidayCalendar,
    **info: Any,
) -> list[Any]:
    pending = list(keys)
    flow = call_flow(config, CallInfo("call-1", "13805712345", started_at=when, **info),
                     holidays=holidays)  # fmt: skip
    seen = [next(flow)]
    while not isinstance(seen[-1], TERMINAL):
        a = seen[-1]
        result: Any = Done()
        if isinstance(a, Collect):
            result = Digits(pending.pop(0) if pending else "")
        elif isinstance(a, Listen):
            result = Heard()
        seen.append(flow.send(result))
    return seen


def played(actions: list[Any]) -> list[str]:
    return [p for a in actions if isinstance(a, Play | Collect) for p in a.prompts]


def test_the_2026_data_has_the_state_council_days(holidays: HolidayCalendar) -> None:
    assert holidays.day_kind(date(2026, 2, 17)) == "holiday"  # 春节
    assert holidays.day_kind(date(2026, 2, 14)) == "makeup"  # Saturday worked before 春节
    assert holidays.day_kind(date(2026, 9, 20)) == "makeup"  # Sunday worked before 国庆
    assert holidays.day_kind(date(2026, 10, 8)) == "normal"
    assert len([d for d in holidays.off if d.year == 2026]) == 33
    assert sorted(d.isoformat() for d in holidays.work if d.year == 2026) == [
        "2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10",
    ]  # fmt: skip


def test_2027_is_marked_provisional(holidays: HolidayCalendar) -> None:
    assert holidays.provisional_years == frozenset({2027})
    assert holidays.day_kind(date(2027, 2, 6)) == "holiday"  # 正月初一


def test_a_holiday_closes_a_seat(
    gjj_office_hours: HotlineConfig, holidays: HolidayCalendar
) -> None:
    assert is_open(gjj_office_hours, "gjj", PLAIN_MONDAY, holidays)
    assert not is_open(gjj_office_hours, "gjj", NATIONAL_DAY, holidays)
    assert is_open(gjj_office_hours, "gjj", NATIONAL_DAY, HolidayCalendar())  # a normal Friday


def test_a_makeup_saturday_opens_a_seat(
    gjj_office_hours: HotlineConfig, holidays: HolidayCalendar
) -> None:
    assert is_open(gjj_office_hours, "gjj", MAKEUP_SATURDAY, holidays)
    assert not is_open(gjj_office_hours, "gjj", PLAIN_SATURDAY, holidays)
    evening = MAKEUP_SATURDAY.replace(hour=18)
    assert not is_open(gjj_office_hours, "gjj", evening, holidays)


def test_hours_are_beijing_time(gjj_office_hours: HotlineConfig, holidays: HolidayCalendar) -> None:
    utc_0130 = datetime(2026, 10, 12, 1, 30, tzinfo=UTC)  # 09:30 in Hangzhou
    assert is_open(gjj_office_hours, "gjj", utc_0130, holidays)
    assert not is_open(gjj_office_hours, "gjj", utc_0130 - timedelta(hours=1), holidays)


def test_a_seat_without_hours_is_always_open(
    gjj_office_hours: HotlineConfig, holidays: HolidayCalendar
) -> None:
    assert is_open(gjj_office_hours, "renshe", NATIONAL_DAY, holidays)


def test_a_seat_open_on_holidays(holidays: HolidayCalendar) -> None:
    cfg = config_with({"gjj": {"hours": [WEEKDAYS], "holidays": "open"}})
    assert is_open(cfg, "gjj", NATIONAL_DAY, holidays)


def test_caller_presses_2_on_national_day_reaches_zonghe(
    gjj_office_hours: HotlineConfig, holidays: HolidayCalendar
) -> None:
    call = place_call(gjj_office_hours, ["2"], NATIONAL_DAY, holidays)
    assert "seat-closed" in played(call)
    route = call[-1]
    assert isinstance(route, Route)
    assert route.request.skill == "zonghe"
    assert route.ivr_path == "main>2>closed"
    assert route.request.fields["closed_seat"] == "gjj"


def test_caller_presses_2_on_a_makeup_saturday_reaches_gjj(
    gjj_office_hours: HotlineConfig, holidays: HolidayCalendar
) -> None:
    route = place_call(gjj_office_hours, ["2"], MAKEUP_SATURDAY, holidays)[-1]
    assert isinstance(route, Route) and route.request.skill == "gjj"
    assert route.ivr_path == "main>2"


def test_closed_seat_takes_a_message_for_a_callback(holidays: HolidayCalendar) -> None:
    cfg = config_with({"gjj": {"hours": [WEEKDAYS], "closed_target": "speech:message"}})
    call = place_call(cfg, ["2"], NATIONAL_DAY, holidays)
    assert any(isinstance(a, Listen) and a.prompt == "speak-message" for a in call)
    assert isinstance(call[-1], Hangup) and call[-1].reason == "message"


def test_emergency_key_ignores_hours(holidays: HolidayCalendar) -> None:
    cfg = config_with({s: {"hours": [WEEKDAYS], "closed_target": "speech:message"}
                       for s in ("gjj", "renshe")})  # fmt: skip
    end = place_call(cfg, ["9", "2"], NATIONAL_DAY.replace(hour=3), holidays)[-1]
    assert type(end).__name__ == "EmergencyTransfer" and end.line == "119"


@pytest.mark.parametrize(
    ("seats", "field"),
    [
        ({"nosuch": {"hours": [WEEKDAYS]}}, "calendar.seats.nosuch"),
        (
            {"gjj": {"hours": [WEEKDAYS], "closed_target": "seat:gjj"}},
            "calendar.seats.gjj.closed_target",
        ),
        (
            {"gjj": {"hours": [WEEKDAYS], "closed_target": "emergency:110"}},
            "calendar.seats.gjj.closed_target",
        ),
        ({"gjj": {"hours": []}}, "calendar.seats.gjj.hours"),
    ],
)
def test_bad_calendar_config_is_refused_at_the_field(seats: dict[str, Any], field: str) -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["calendar"] = {"seats": seats}
    text = safe_yaml_dump(data)
    with pytest.raises(ValueError) as err:
        parse_config(text)
    assert field in str(err.value)


def safe_yaml_dump(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, allow_unicode=True)


@pytest.mark.parametrize(
    "doc",
    [
        {"years": {2026: {"holidays": []}}},  # no source
        {"years": {2026: {"source": "x", "holidays": [{"name": "a", "days": ["2026-10-01"]}]}}},
        {
            "years": {
                2026: {
                    "source": "x",
                    "holidays": [{"name": "a", "days": ["2027-10-01", "2027-10-02"]}],
                }
            }
        },
        {
            "years": {
                2026: {
                    "source": "x",
                    "holidays": [
                        {"name": "a", "days": ["2026-10-01", "2026-10-02"], "work": ["2026-10-05"]}
                    ],
                }
            }
        },  # a Monday
        {
            "years": {
                2026: {
                    "source": "x",
                    "holidays": [
                        {"name": "a", "days": ["2026-10-01", "2026-10-10"], "work": ["2026-10-10"]}
                    ],
                }
            }
        },
        "not a mapping",
    ],
)
def test_a_bad_holiday_file_is_refused(doc: object) -> None:
    with pytest.raises(CalendarError):
        HolidayCalendar.parse(doc)


def test_an_unreadable_holiday_file_means_no_holidays(tmp_path: Path) -> None:
    bad = tmp_path / "h.yaml"
    bad.write_text("years: [1, 2", encoding="utf-8")
    assert HolidayCalendar.load(bad) == HolidayCalendar()
    assert HolidayCalendar.load(tmp_path / "missing.yaml") == HolidayCalendar()


def test_the_test_clock_file_moves_the_call_clock(tmp_path: Path, monkeypatch: Any) -> None:
    from agi_scripts.call_start import TEST_CLOCK_ENV, call_clock

    clock = tmp_path / "clock"
    monkeypatch.setenv(TEST_CLOCK_ENV, str(clock))
    clock.write_text("86400", encoding="ascii")
    ahead = call_clock() - datetime.now(UTC)
    assert timedelta(hours=23) < ahead < timedelta(hours=25)
    for junk in ("nan", "1e30", "tomorrow"):
        clock.write_text(junk, encoding="ascii")
        assert abs(call_clock() - datetime.now(UTC)) < timedelta(minutes=1)
    monkeypatch.delenv(TEST_CLOCK_ENV)
    assert abs(call_clock() - datetime.now(UTC)) < timedelta(minutes=1)
