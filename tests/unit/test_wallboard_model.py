"""The wallboard's live model and alerts, as a supervisor's day goes: callers join seat
queues, agents answer, callers give up, and matters surge in one district."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hotline.call import CallEvent, CallRecord
from hotline.config import Supervise
from supervise.alerts import hotspots, live_alerts, parse_rows, poisson_tail
from supervise.live import LiveModel

ZONE = ZoneInfo("Asia/Shanghai")
NINE = datetime(2026, 5, 4, 9, 0, tzinfo=ZONE).timestamp()
SEATS = {"gjj": "公积金专席", "zonghe": "综合席"}
AGENTS = {"1002": "张三", "1003": "李四"}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def model(clock: Clock) -> LiveModel:
    return LiveModel(SEATS, AGENTS, service_level_s=20, timezone="Asia/Shanghai", clock=clock)


def joins(call: str, at: float, seat: str = "gjj") -> CallEvent:
    return CallEvent("route", call, at, "ami", call, {"seat": seat, "queue": f"q-{seat}"})


def answers(call: str, at: float, agent: str = "1002") -> CallEvent:
    return CallEvent("agent", call, at, "ami", call, {"agent": agent, "queue": "q-gjj"})


def hangs_up(call: str, at: float) -> CallEvent:
    return CallEvent("ended", call, at, "ami", call, {"cause": "Normal Clearing"})


def seat(m: LiveModel, seat_id: str = "gjj") -> dict:
    return next(s for s in m.snapshot()["seats"] if s["id"] == seat_id)


def test_a_caller_waits_then_an_agent_answers_within_service_level() -> None:
    clock = Clock(NINE + 30)
    m = model(clock)
    m.apply(joins("c1", NINE))
    s = seat(m)
    assert (s["waiting"], s["longest_wait_s"], s["offered"], s["service_level"]) == (
        1,
        30.0,
        1,
        0.0,
    )
    facts = m.apply(answers("c1", NINE + 12))
    assert [(f.name, f.value) for f in facts] == [("answered", 12.0)]
    s = seat(m)
    assert (s["waiting"], s["answered"], s["service_level"], s["asa_s"]) == (0, 1, 1.0, 12.0)
    agent = next(a for a in m.snapshot()["agents"] if a["id"] == "1002")
    assert (agent["state"], agent["seat"], agent["call_id"], agent["call_s"]) == (
        "on_call",
        "gjj",
        "c1",
        18.0,
    )
    m.apply(hangs_up("c1", NINE + 100))
    agent = next(a for a in m.snapshot()["agents"] if a["id"] == "1002")
    assert (agent["state"], agent["call_id"]) == ("ready", "")
    assert seat(m)["abandoned"] == 0


def test_a_caller_who_hangs_up_waiting_is_abandoned_and_late_answers_miss_service_level() -> None:
    clock = Clock(NINE + 200)
    m = model(clock)
    m.apply(joins("c1", NINE))
    m.apply(joins("c2", NINE + 1))
    m.apply(hangs_up("c1", NINE + 45))
    m.apply(answers("c2", NINE + 61))
    s = seat(m)
    assert (s["offered"], s["answered"], s["abandoned"], s["abandoned_wait_s"]) == (2, 1, 1, 45.0)
    assert s["service_level"] == 0.0 and s["asa_s"] == 60.0


def test_an_event_delivered_twice_counts_once() -> None:
    m = model(Clock(NINE + 60))
    for _ in range(2):
        m.apply(joins("c1", NINE))
        m.apply(answers("c1", NINE + 5))
        m.apply(hangs_up("c1", NINE + 50))
    s = seat(m)
    assert (s["offered"], s["answered"], s["abandoned"]) == (1, 1, 0)


def test_a_restart_seeded_from_the_records_keeps_the_day() -> None:
    live = model(Clock(NINE + 300))
    events = [
        joins("c1", NINE),
        answers("c1", NINE + 8),
        hangs_up("c1", NINE + 90),
        joins("c2", NINE + 10),
        hangs_up("c2", NINE + 40),
        joins("c3", NINE + 250),
    ]
    records: dict[str, CallRecord] = {}
    for e in events:
        live.apply(e)
        records.setdefault(e.call_id, CallRecord(e.call_id)).apply(e)
    restarted = model(Clock(NINE + 300))
    assert restarted.seed(records.values()) == 3
    for e in events:  # the stream read from before the seed: nothing counts twice
        restarted.apply(e)
    assert seat(restarted) == seat(live)
    assert seat(restarted)["waiting"] == 1 and seat(restarted)["offered"] == 3


def test_an_unanswered_seat_queue_fails_open_to_the_general_seat() -> None:
    m = model(Clock(NINE + 200))
    m.apply(joins("c1", NINE))
    fell = CallEvent(
        "fallback",
        "c1",
        NINE + 60,
        "ami",
        "c1",
        {"reason": "queue-TIMEOUT", "seat": "zonghe", "queue": "q-zonghe"},
    )
    facts = m.apply(fell)
    assert [(f.name, f.key) for f in facts] == [
        ("fallback", "queue-TIMEOUT"),
        ("offered", "zonghe"),
    ]
    gjj, zonghe = seat(m), seat(m, "zonghe")
    assert (gjj["waiting"], gjj["overflowed"], gjj["offered"]) == (0, 1, 1)
    assert (zonghe["waiting"], zonghe["offered"], zonghe["longest_wait_s"]) == (1, 1, 140.0)
    m.apply(answers("c1", NINE + 70, "1008"))
    assert (seat(m, "zonghe")["answered"], seat(m, "zonghe")["asa_s"]) == (1, 10.0)
    m.apply(fell)  # repeated: nothing more
    after = CallEvent(
        "fallback",
        "c1",
        NINE + 90,
        "ami",
        "c1",
        {"reason": "general-queue-TIMEOUT", "seat": "zonghe"},
    )
    assert [f.name for f in m.apply(after)] == ["fallback"]
    assert seat(m, "zonghe")["offered"] == 1


def test_the_counters_start_again_at_midnight_but_waiting_callers_stay() -> None:
    midnight = datetime(2026, 5, 5, 0, 0, tzinfo=ZONE).timestamp()
    clock = Clock(midnight - 120)
    m = model(clock)
    m.apply(joins("c1", midnight - 100))
    m.apply(answers("c1", midnight - 90))
    m.apply(joins("c2", midnight - 10))
    assert (seat(m)["offered"], seat(m)["answered"]) == (2, 1)
    clock.t = midnight + 50
    s = seat(m)
    assert (s["offered"], s["answered"], s["waiting"], s["longest_wait_s"]) == (0, 0, 1, 60.0)
    assert m.snapshot()["day"] == "2026-05-05"


def test_the_acd_says_an_agent_is_not_ready_since_when_it_changed() -> None:
    clock = Clock(NINE)
    m = model(clock)
    assert m.agent_state("1003", "not_ready", "break", "", NINE)
    assert not m.agent_state("1003", "not_ready", "break", "", NINE + 500)  # unchanged
    clock.t = NINE + 1000
    a = next(a for a in m.snapshot()["agents"] if a["id"] == "1003")
    assert (a["state"], a["reason"], a["in_state_s"]) == ("not_ready", "break", 1000.0)
    assert not m.agent_state("1003", "dancing", "", "", NINE)  # not an ACD state


def test_live_alerts_for_low_service_level_long_wait_and_long_not_ready() -> None:
    cfg = Supervise(alert_min_offered=2, wait_alert_s=60, not_ready_alert_s=600)
    clock = Clock(NINE + 120)
    m = model(clock)
    m.apply(joins("c1", NINE))
    m.apply(joins("c2", NINE + 1))
    m.apply(answers("c2", NINE + 50))
    m.agent_state("1003", "not_ready", "meeting", "", NINE - 700)
    kinds = {(a.kind, a.key) for a in live_alerts(m.snapshot(), cfg)}
    assert kinds == {("service_level", "gjj"), ("wait", "gjj"), ("not_ready", "1003")}
    m.apply(answers("c1", NINE + 121, "1003"))
    quiet = Supervise(alert_min_offered=3)
    assert live_alerts(m.snapshot(), quiet) == []  # too few calls to judge


# ---- 第二十一条 hotspot ------------------------------------------------------------------
NOW = datetime(2026, 5, 4, 15, 0, tzinfo=ZONE)
CFG = Supervise()


def draft_row(
    at: datetime, district: str = "西湖区", type_: str = "投诉", dept: str = "城管"
) -> tuple[str, str]:
    body = {"type": type_, "seat": "zonghe", "department": dept, "district": district}
    return json.dumps(body, ensure_ascii=False), at.isoformat()


def test_twenty_callers_about_one_district_within_minutes_raise_the_hotspot() -> None:
    rows = [draft_row(NOW - timedelta(minutes=20) + timedelta(seconds=40 * i)) for i in range(20)]
    rows += [draft_row(NOW - timedelta(days=d, minutes=30)) for d in range(1, 29, 3)]  # usual
    found = hotspots(parse_rows(rows, ZONE), NOW, CFG)
    keys = {a.key for a in found}
    assert {"type:投诉:西湖区", "department:城管:西湖区", "seat:zonghe:西湖区"} == keys
    alert = next(a for a in found if a.key == "department:城管:西湖区")
    assert alert.value == 20 and "西湖区" in alert.text


def test_the_same_twenty_spread_over_a_normal_day_do_not() -> None:
    rows = [draft_row(NOW - timedelta(minutes=72 * i)) for i in range(20)]  # one every 72 min
    assert hotspots(parse_rows(rows, ZONE), NOW, CFG) == []


def test_a_matter_that_is_always_busy_at_this_hour_is_no_hotspot() -> None:
    now = [draft_row(NOW - timedelta(minutes=2 * i), "拱墅区", "咨询", "公积金") for i in range(20)]
    usual = [
        draft_row(NOW - timedelta(days=d, minutes=2 * i), "拱墅区", "咨询", "公积金")
        for d in range(1, 29)
        for i in range(18)
    ]
    assert hotspots(parse_rows(now + usual, ZONE), NOW, CFG) == []


def test_drafts_without_district_or_unreadable_rows_are_skipped() -> None:
    rows = [
        ("not json", NOW.isoformat()),
        (json.dumps({"type": "投诉"}), NOW.isoformat()),
        (json.dumps({"district": "西湖区"}), "yesterday"),
    ]
    parsed = parse_rows(rows, ZONE)
    assert [groups for _, groups in parsed] == [[]]
    assert hotspots(parsed, NOW, CFG) == []


def test_the_poisson_tail() -> None:
    assert poisson_tail(0, 2.0) == 1.0
    assert abs(poisson_tail(1, 2.0) - (1 - 2.718281828**-2)) < 1e-9
    assert poisson_tail(20, 0.5) < 1e-20
