"""Calls through the IVR flow, driven by a small fake transport (a caller pressing keys)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import safe_yaml
from hotline.config import HotlineConfig
from ivr import actions
from ivr.actions import (
    TERMINAL,
    CallInfo,
    Collect,
    Digits,
    Done,
    EmergencyTransfer,
    Hangup,
    Heard,
    Listen,
    Play,
    Route,
)
from ivr.flow import (
    EXHAUSTED_PRIORITY,
    MAX_COLLECTS,
    SPEECH_SEAT_MIN_CONFIDENCE,
    call_flow,
    is_open,
)
from ivr.speak import say_date

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"
ACTION_TYPES = (Play, Collect, Listen, Route, EmergencyTransfer, Hangup)
SHANGHAI = timedelta(hours=8)


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    """The example config for keypad scenarios: nobody is asked to speak (the example asks
    after the seat key; the speech scenarios below build their own)."""
    return config_with(speech={"mode": "off"})


def config_with(**changes: Any) -> HotlineConfig:
    """The example config with top-level sections replaced, or main-menu options added
    (``main_options={"5": "notice:litigation"}``)."""
    data = safe_yaml.load_file(EXAMPLE)
    for digit, target in changes.pop("main_options", {}).items():
        data["menus"]["main"]["options"][digit] = target
    data.update(changes)
    return HotlineConfig.model_validate(data)


@dataclasses.dataclass
class Call:
    """What happened on one call: every action the flow yielded, in order."""

    actions: list[actions.Action]

    @property
    def end(self) -> actions.Action:
        return self.actions[-1]

    @property
    def route(self) -> Route:
        assert isinstance(self.end, Route), f"call ended with {self.end}"
        return self.end

    def played(self) -> list[str]:
        """Every prompt the caller heard (Play, Collect and Listen prompts) in order."""
        out: list[str] = []
        for a in self.actions:
            if isinstance(a, Play | Collect):
                out += a.prompts
            elif isinstance(a, Listen):
                out.append(a.prompt)
        return out

    def collects(self, prompt: str) -> int:
        return sum(isinstance(a, Collect) and prompt in a.prompts for a in self.actions)

    def plays(self, prompt: str) -> int:
        return sum(isinstance(a, Play) and prompt in a.prompts for a in self.actions)


def place_call(
    config: HotlineConfig,
    keys: Iterable[str] = (),
    *,
    said: dict[str, object] | None = None,
    now: datetime | None = None,
    max_actions: int = 500,
    **call_fields: Any,
) -> Call:
    """Drive the flow like a transport: one key (or silence) per Collect, ``said`` as the
    ticket draft for a Listen.  Checks the contract on the way: only ivr.actions types, and
    the generator is finished once it yielded a terminal action."""
    pending = list(keys)
    info = CallInfo(call_id="call-1", caller="13805712345", **call_fields)
    flow = call_flow(config, info, now=now)
    action = next(flow)
    seen = [action]
    while not isinstance(action, TERMINAL):
        assert isinstance(action, ACTION_TYPES), action
        assert len(seen) < max_actions, "the flow did not end"
        if isinstance(action, Collect):
            result: actions.Result = Digits(pending.pop(0) if pending else "")
        elif isinstance(action, Listen):
            result = Heard(transcript="…", draft=said)
        else:
            result = Done()
        action = flow.send(result)
        seen.append(action)
    with pytest.raises(StopIteration):
        flow.send(Done())
    return Call(seen)


# ---- the main menu ----------------------------------------------------------------------
def test_caller_presses_2_reaches_gongjijin_seat(config: HotlineConfig) -> None:
    call = place_call(config, ["2"])
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["ivr_path"] == "main>2"
    assert call.route.request.call_id == "call-1"
    assert call.route.request.caller == "13805712345"
    assert call.actions[0] == Collect(("greeting", "main-menu"), max_digits=1, timeout_ms=5000)
    assert call.actions[-2] == Play(("transfer",))


def test_every_seat_key_of_the_main_menu_reaches_its_seat(config: HotlineConfig) -> None:
    for key, target in config.menus["main"].options.items():
        if target.kind != "seat":
            continue
        call = place_call(config, [key])
        assert call.route.request.skill == target.value
        assert call.route.request.fields["ivr_path"] == f"main>{key}"


def test_silent_caller_hears_menu_three_times_then_reaches_general_seat(
    config: HotlineConfig,
) -> None:
    call = place_call(config, [])
    retries = config.menus["main"].retries
    assert call.collects("main-menu") == retries
    assert call.plays("no-input") == retries
    assert call.played().count("greeting") == 1
    assert call.route.request.skill == config.general_seat.id
    assert call.route.request.priority == EXHAUSTED_PRIORITY
    assert call.route.request.fields["via"] == "exhausted"


def test_invalid_key_plays_invalid_prompt_then_2_reaches_gongjijin(config: HotlineConfig) -> None:
    call = place_call(config, ["#", "2"])
    assert call.played() == ["greeting", "main-menu", "invalid", "main-menu", "transfer"]
    assert call.route.request.skill == "gjj"
    assert call.route.request.priority == 0


def test_three_wrong_keys_still_reach_a_person(config: HotlineConfig) -> None:
    call = place_call(config, ["#", "#", "#"])
    assert call.plays("invalid") == 3
    assert call.route.request.skill == config.general_seat.id


def test_retries_are_counted_per_menu_round_mixing_silence_and_wrong_keys(
    config: HotlineConfig,
) -> None:
    call = place_call(config, ["", "#", "2"])
    expected = ["greeting", "main-menu", "no-input", "main-menu", "invalid", "main-menu"]
    assert call.played() == [*expected, "transfer"]
    assert call.route.request.skill == "gjj"


def test_a_repeat_key_replays_the_menu_without_counting_a_retry() -> None:
    config = config_with(main_options={"*": "repeat:menu"})
    presses = ["*"] * (config.menus["main"].retries + 2) + ["2"]
    call = place_call(config, presses)
    assert call.collects("main-menu") == len(presses)
    assert call.plays("invalid") == call.plays("no-input") == 0
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["ivr_path"] == "main>2"


def test_greeting_is_heard_once_even_when_caller_comes_back_to_main(
    config: HotlineConfig,
) -> None:
    call = place_call(config, ["9", "0", "", "3"])
    assert call.played().count("greeting") == 1
    assert call.route.request.skill == "jiaotong"
    assert call.route.request.fields["ivr_path"] == "main>9>emergency>0>main>3"


def test_caller_can_press_9_during_the_greeting(config: HotlineConfig) -> None:
    call = place_call(config, ["9", "2"])
    first = call.actions[0]
    assert isinstance(first, Collect)
    assert first.prompts == ("greeting", "main-menu")
    assert first.timeout_ms == int(config.menus["main"].timeout_s * 1000)
    assert first.max_digits == 1
    assert call.end == EmergencyTransfer("119", reason="key:main>9>emergency>2")


def test_menu_rounds_after_the_first_do_not_replay_the_greeting(config: HotlineConfig) -> None:
    call = place_call(config, ["", "2"])
    menus = [a for a in call.actions if isinstance(a, Collect)]
    assert [m.prompts for m in menus] == [("greeting", "main-menu"), ("main-menu",)]


# ---- emergencies --------------------------------------------------------------------------
def test_9_then_2_transfers_to_119(config: HotlineConfig) -> None:
    call = place_call(config, ["9", "2"])
    assert call.end == EmergencyTransfer("119", reason="key:main>9>emergency>2")
    assert call.actions[-2] == Play(("emergency-119",))


@pytest.mark.parametrize(("key", "line"), [("1", "110"), ("3", "120"), ("4", "122")])
def test_emergency_menu_reaches_each_line(config: HotlineConfig, key: str, line: str) -> None:
    call = place_call(config, ["9", key])
    assert isinstance(call.end, EmergencyTransfer)
    assert call.end.line == line
    assert call.plays(f"emergency-{line}") == 1


def test_silence_in_the_emergency_menu_reaches_a_person(config: HotlineConfig) -> None:
    call = place_call(config, ["9"])
    assert call.collects("emergency-menu") == config.menus["emergency"].retries
    assert call.route.request.skill == config.general_seat.id


# ---- business hours ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def office_hours() -> HotlineConfig:
    return config_with(
        business_hours={
            "timezone": "Asia/Shanghai",
            "always_open": False,
            "hours": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:30", "close": "17:30"}
            ],
        }
    )


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime (what a transport would pass)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


def test_call_on_saturday_hears_closed_prompt_and_can_leave_a_message(
    office_hours: HotlineConfig,
) -> None:
    saturday = shanghai(2026, 11, 21, 10)
    call = place_call(office_hours, ["2"], now=saturday, said={"transcript": "路灯坏了"})
    assert call.actions[0] == Play(("closed",))
    assert "greeting" not in call.played()
    assert any(isinstance(a, Listen) and a.prompt == "speak-message" for a in call.actions)
    assert call.end == Hangup("message")


def test_call_during_office_hours_gets_the_menu(office_hours: HotlineConfig) -> None:
    monday_morning = shanghai(2026, 11, 23, 9)
    call = place_call(office_hours, ["2"], now=monday_morning)
    assert "closed" not in call.played()
    assert call.route.request.skill == "gjj"


def test_clock_can_come_with_the_call_info(office_hours: HotlineConfig) -> None:
    call = place_call(office_hours, ["2"], started_at=shanghai(2026, 11, 23, 18))
    assert call.actions[0] == Play(("closed",))


def test_message_left_after_hours_about_a_fire_goes_to_119(office_hours: HotlineConfig) -> None:
    night = shanghai(2026, 11, 23, 23)
    fire = {"emergency": "119", "emergency_words": ["着火"]}
    call = place_call(office_hours, [], now=night, said=fire)
    assert call.end == EmergencyTransfer("119", reason="speech:着火")


def test_business_hours_boundaries() -> None:
    hours = config_with(
        business_hours={
            "always_open": False,
            "hours": [
                {"days": ["mon"], "open": "08:30", "close": "17:30"},
                {"days": ["fri"], "open": "20:00", "close": "02:00"},
            ],
        }
    ).business_hours
    monday = date(2026, 11, 23)
    assert monday.strftime("%a") == "Mon"
    at = lambda d, h, m: datetime(d.year, d.month, d.day, h, m)  # noqa: E731 naive = local
    assert not is_open(hours, at(monday, 8, 29))
    assert is_open(hours, at(monday, 8, 30))
    assert is_open(hours, at(monday, 17, 29))
    assert not is_open(hours, at(monday, 17, 30))
    friday, saturday = monday + timedelta(days=4), monday + timedelta(days=5)
    assert is_open(hours, at(friday, 23, 0))
    assert is_open(hours, at(saturday, 1, 59))
    assert not is_open(hours, at(saturday, 2, 0))
    assert not is_open(hours, at(monday, 1, 0))  # Sunday night has no span


def test_unknown_timezone_fails_open() -> None:
    cfg = config_with(business_hours={"timezone": "Mars/Olympus", "always_open": False})
    call = place_call(cfg, ["2"], now=datetime(2026, 11, 21, 3, tzinfo=UTC))
    assert call.route.request.skill == "gjj"


def test_always_open_ignores_the_clock(config: HotlineConfig) -> None:
    call = place_call(config, ["2"], now=shanghai(2026, 11, 22, 3))
    assert call.route.request.skill == "gjj"


# ---- caller rules (第二十九条) -------------------------------------------------------------
def test_warned_caller_hears_the_throttle_notice_after_the_greeting(
    config: HotlineConfig,
) -> None:
    call = place_call(config, ["2"], caller_flag="warning")
    assert call.actions[0] == Play(("greeting", "throttle-warning"))
    assert call.route.request.fields["caller_flag"] == "warning"


def test_suspended_caller_is_told_and_hung_up_without_reaching_a_seat(
    config: HotlineConfig,
) -> None:
    call = place_call(config, ["2"], caller_flag="suspended")
    assert call.played() == ["throttle-suspended", "goodbye"]
    assert call.end == Hangup("suspended")


def test_suspended_caller_can_still_reach_120(config: HotlineConfig) -> None:
    call = place_call(config, ["9", "3"], caller_flag="suspended")
    assert call.end == EmergencyTransfer("120", reason="key:suspended>9>emergency>3")


def test_suspended_caller_cannot_escape_to_the_main_menu(config: HotlineConfig) -> None:
    call = place_call(config, ["9", "0", "0"], caller_flag="suspended")
    assert "main-menu" not in call.played()
    assert call.plays("invalid") == config.menus["emergency"].retries
    assert call.end == Hangup("suspended")


def test_suspended_caller_gets_an_emergency_menu_even_if_none_is_configured() -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["menus"] = {"main": {"prompts": ["greeting", "main-menu"], "options": {"2": "seat:gjj"}}}
    cfg = HotlineConfig.model_validate(data)
    call = place_call(cfg, ["9", "2"], caller_flag="suspended")
    assert call.end == EmergencyTransfer("119", reason="key:suspended>9>emergency>2")


# ---- out-of-scope notices (第九条) and speech ----------------------------------------------
def test_out_of_scope_notice_then_0_reaches_the_general_seat() -> None:
    cfg = config_with(main_options={"5": "notice:litigation"})
    call = place_call(cfg, ["5", "0"])
    assert "notice-legal" in call.played()
    assert call.route.request.skill == cfg.general_seat.id
    assert call.route.request.fields["ivr_path"] == "main>5>0"


def test_out_of_scope_notice_then_silence_says_goodbye() -> None:
    cfg = config_with(main_options={"5": "notice:privacy"})
    call = place_call(cfg, ["5"])
    assert call.played()[-2:] == ["notice-secret", "goodbye"]
    assert call.end == Hangup("notice:privacy")


def test_unknown_notice_rule_fails_open_to_a_person() -> None:
    cfg = config_with(main_options={"5": "notice:no_such_rule"})
    call = place_call(cfg, ["5"])
    assert call.route.request.skill == cfg.general_seat.id


@pytest.fixture(scope="module")
def speech_menu() -> HotlineConfig:
    return config_with(main_options={"6": "speech:demand"})


def test_spoken_demand_with_a_confident_seat_goes_to_that_seat(speech_menu: HotlineConfig) -> None:
    draft = {"seat": "gjj", "confidence": {"seat": SPEECH_SEAT_MIN_CONFIDENCE + 0.1}}
    call = place_call(speech_menu, ["6"], said=draft)
    assert any(isinstance(a, Listen) and a.prompt == "speak-demand" for a in call.actions)
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["draft"] == draft
    assert call.route.request.fields["via"] == "speech"


def test_spoken_demand_with_an_unsure_seat_goes_to_the_general_seat(
    speech_menu: HotlineConfig,
) -> None:
    draft = {"seat": "gjj", "confidence": {"seat": SPEECH_SEAT_MIN_CONFIDENCE - 0.2}}
    call = place_call(speech_menu, ["6"], said=draft)
    assert call.route.request.skill == speech_menu.general_seat.id


@pytest.mark.parametrize(
    "draft",
    [None, {}, {"seat": "no_such_seat", "confidence": {"seat": 1.0}}, {"seat": "gjj"}],
    ids=["nothing-heard", "empty", "unknown-seat", "no-confidence"],
)
def test_speech_that_yields_nothing_usable_goes_to_the_general_seat(
    speech_menu: HotlineConfig, draft: dict[str, object] | None
) -> None:
    call = place_call(speech_menu, ["6"], said=draft)
    assert call.route.request.skill == speech_menu.general_seat.id


def test_spoken_emergency_goes_to_the_line(speech_menu: HotlineConfig) -> None:
    draft = {"emergency": "120", "emergency_words": ["晕倒"], "seat": "gjj"}
    call = place_call(speech_menu, ["6"], said=draft)
    assert call.end == EmergencyTransfer("120", reason="speech:晕倒")


def test_spoken_out_of_scope_matter_hears_its_notice(speech_menu: HotlineConfig) -> None:
    call = place_call(speech_menu, ["6", "0"], said={"out_of_scope": "litigation"})
    assert "notice-legal" in call.played()
    assert call.route.request.skill == speech_menu.general_seat.id


@pytest.mark.parametrize(
    ("utterance", "keys", "outcome", "hears"),
    [
        ("我想咨询一下公积金提取需要哪些材料。", [], "seat:gjj", "transfer"),
        ("楼下着火了，好多烟", [], "emergency:119", "emergency-119"),
        ("我要起诉我的邻居", ["0"], "seat:zonghe", "notice-legal"),
        ("嗯", [], "seat:zonghe", "transfer"),
    ],
)
def test_spoken_demands_through_the_real_field_extractor(
    speech_menu: HotlineConfig, utterance: str, keys: list[str], outcome: str, hears: str
) -> None:
    from speech import fields  # the repo's own module: an import error fails, never skips

    draft = fields.extract(utterance, speech_menu)
    call = place_call(speech_menu, ["6", *keys], said=draft)
    assert hears in call.played()
    if isinstance(call.end, EmergencyTransfer):
        assert f"emergency:{call.end.line}" == outcome
    else:
        assert f"seat:{call.route.request.skill}" == outcome


# ---- progress of open demands (第十四条) ---------------------------------------------------
TICKET = {
    "status": "in_progress",
    "created_at": "2026-11-20T09:12:00",
    "feedback_due": date(2026, 12, 4),
}


def test_caller_with_an_open_demand_hears_its_progress_then_the_menu(
    config: HotlineConfig,
) -> None:
    call = place_call(config, ["1", "2"], open_tickets=(TICKET,))
    heard = call.played()
    assert heard[:3] == ["greeting", "progress-intro", "progress-menu"]
    assert "status-in-progress" in heard
    i = heard.index("received-on")
    assert tuple(heard[i + 1 : i + 1 + len(say_date(date(2026, 11, 20)))]) == say_date(
        date(2026, 11, 20)
    )
    assert "feedback-by" in heard
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["ivr_path"] == "progress>1>main>2"


def test_caller_with_an_open_demand_can_skip_to_a_new_demand(config: HotlineConfig) -> None:
    call = place_call(config, ["2", "2"], open_tickets=(TICKET,))
    assert "received-on" not in call.played()
    assert call.route.request.skill == "gjj"


def test_caller_with_several_open_demands_hears_how_many(config: HotlineConfig) -> None:
    done = {"status": "已办结", "created_at": "2026-10-01", "feedback_due": "garbage"}
    call = place_call(config, ["1", "0"], open_tickets=(done, TICKET, TICKET))
    heard = call.played()
    assert heard[1:6] == ["you-have", "digit-3", "jian", "demands-pending", "latest-demand"]
    assert "status-done" in heard
    assert "feedback-by" not in heard


def test_demand_registered_late_evening_utc_is_dated_in_hangzhou_time(
    config: HotlineConfig,
) -> None:
    ticket = {"status": "accepted", "created_at": "2026-11-20T17:30:00+00:00"}
    call = place_call(config, ["1", "2"], open_tickets=(ticket,))
    heard = call.played()
    i = heard.index("received-on") + 1
    local_day = date(2026, 11, 21)  # 01:30 the next morning in Asia/Shanghai
    assert tuple(heard[i : i + len(say_date(local_day))]) == say_date(local_day)


def test_progress_key_without_open_demands_says_so_and_offers_the_menu_again() -> None:
    cfg = config_with(main_options={"5": "progress:latest"})
    call = place_call(cfg, ["5", "2"])
    assert call.played()[:4] == ["greeting", "main-menu", "progress-none", "main-menu"]
    assert call.route.request.skill == "gjj"


# ---- robustness and the contract -----------------------------------------------------------
def test_odd_results_from_the_transport_count_as_silence(config: HotlineConfig) -> None:
    flow = call_flow(config, CallInfo(call_id="c", caller=""))
    action = next(flow)
    results = iter([Done(), None, Heard(), Digits("A"), Digits("25")])
    while not isinstance(action, TERMINAL):
        action = flow.send(next(results) if isinstance(action, Collect) else Done())
    assert isinstance(action, Route)
    assert action.request.skill == config.general_seat.id  # Done, None, Heard: three silent rounds


def test_a_menu_that_exhausts_into_repeat_still_reaches_a_person() -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["menus"]["main"]["on_exhausted"] = "repeat:menu"
    call = place_call(HotlineConfig.model_validate(data), [])
    assert call.route.request.skill == "zonghe"


def test_menus_exhausting_into_each_other_cannot_hold_a_caller_forever() -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["menus"]["main"]["on_exhausted"] = "menu:emergency"
    data["menus"]["emergency"]["on_exhausted"] = "menu:main"
    call = place_call(HotlineConfig.model_validate(data), [])
    assert sum(isinstance(a, Collect) for a in call.actions) == MAX_COLLECTS
    assert call.route.request.skill == "zonghe"
    assert call.route.request.fields["via"] == "limit"


def test_caller_who_chooses_after_exhausting_into_a_submenu_is_routed_normally() -> None:
    data = safe_yaml.load_file(EXAMPLE)
    data["menus"]["main"]["on_exhausted"] = "menu:emergency"
    call = place_call(HotlineConfig.model_validate(data), ["", "", "", "0", "2"])
    assert call.route.request.skill == "gjj"
    assert call.route.request.priority == 0
    assert call.route.request.fields["via"] == "key"
    assert call.route.request.fields["ivr_path"] == "main>emergency>0>main>2"


def test_flow_is_deterministic(config: HotlineConfig) -> None:
    assert place_call(config, ["9", "0", "x", "2"]) == place_call(config, ["9", "0", "x", "2"])


KEYS = st.sampled_from([*"0123456789*#", "", "A", "99"])


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(KEYS, max_size=60),
    flag=st.sampled_from(["normal", "warning", "suspended", "???"]),
    tickets=st.sampled_from([(), (TICKET,), (TICKET, TICKET)]),
    said=st.sampled_from(
        [None, {"seat": "gjj", "confidence": {"seat": 0.9}}, {"emergency": "119"}]
    ),
    menu_extra=st.sampled_from(
        [{}, {"5": "notice:litigation", "6": "speech:demand", "7": "progress:latest"}]
    ),
)
def test_any_key_sequence_ends_in_a_terminal_action_within_bounds(
    keys: list[str],
    flag: str,
    tickets: tuple[dict[str, object], ...],
    said: dict[str, object] | None,
    menu_extra: dict[str, str],
) -> None:
    cfg = _configs(tuple(sorted(menu_extra.items())))
    call = place_call(
        cfg,
        keys,
        said=said,
        caller_flag=flag,
        open_tickets=tickets,
        max_actions=4 * MAX_COLLECTS + 10,
    )
    assert isinstance(call.end, TERMINAL)
    assert all(isinstance(a, ACTION_TYPES) for a in call.actions)
    assert sum(isinstance(a, TERMINAL) for a in call.actions) == 1
    if isinstance(call.end, Route):
        assert call.end.request.skill in {s.id for s in cfg.seats}
    if flag == "suspended":
        assert not isinstance(call.end, Route)


_CONFIG_CACHE: dict[tuple[tuple[str, str], ...], HotlineConfig] = {}


def _configs(extra: tuple[tuple[str, str], ...]) -> HotlineConfig:
    if extra not in _CONFIG_CACHE:
        _CONFIG_CACHE[extra] = config_with(main_options=dict(extra))
    return _CONFIG_CACHE[extra]


# ---- speech after a key choice, confirmation of spoken emergencies -------------------------
@pytest.fixture(scope="module")
def speak_after_choice() -> HotlineConfig:
    return config_with(speech={"mode": "after_choice"})


def test_after_choosing_a_seat_the_caller_says_the_matter_and_the_draft_goes_along(
    speak_after_choice: HotlineConfig,
) -> None:
    draft = {"seat": "gjj", "summary": "公积金提取材料", "confidence": {"seat": 0.9}}
    call = place_call(speak_after_choice, ["2"], said=draft)
    assert call.played()[-2:] == ["speak-demand", "transfer"]
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["draft"] == draft
    assert call.route.request.fields["via"] == "key"


def test_an_unsure_spoken_seat_does_not_override_the_key(speak_after_choice: HotlineConfig) -> None:
    draft = {"seat": "renshe", "confidence": {"seat": 0.7}}
    call = place_call(speak_after_choice, ["2"], said=draft)
    assert call.route.request.skill == "gjj"


def test_a_confident_spoken_seat_redirects_a_general_seat_choice(
    speak_after_choice: HotlineConfig,
) -> None:
    draft = {"seat": "gjj", "confidence": {"seat": 0.95}}
    call = place_call(speak_after_choice, ["0"], said=draft)
    assert call.route.request.skill == "gjj"
    assert call.route.request.fields["via"] == "speech"


def test_silence_after_choosing_still_reaches_the_chosen_seat(
    speak_after_choice: HotlineConfig,
) -> None:
    call = place_call(speak_after_choice, ["7"], said=None)
    assert call.route.request.skill == "yibao"
    assert "draft" not in call.route.request.fields


def test_spoken_fire_is_confirmed_with_1_then_transferred_to_119(
    speak_after_choice: HotlineConfig,
) -> None:
    draft = {"emergency": "119", "emergency_words": ["着火"], "seat": None}
    call = place_call(speak_after_choice, ["0", "1"], said=draft)
    assert "confirm-emergency-119" in call.played()
    assert call.end == EmergencyTransfer("119", reason="speech:着火")


def test_a_caller_who_declines_the_emergency_transfer_reaches_the_chosen_seat(
    speak_after_choice: HotlineConfig,
) -> None:
    draft = {"emergency": "119", "emergency_words": ["着火"], "seat": "jiaotong"}
    call = place_call(speak_after_choice, ["3", "2"], said=draft)
    assert call.route.request.skill == "jiaotong"
    assert call.route.request.fields["ivr_path"] == "main>3>confirm-119>2"


def test_a_silent_caller_after_a_spoken_emergency_is_transferred_all_the_same(
    speak_after_choice: HotlineConfig,
) -> None:
    draft = {"emergency": "120", "emergency_words": ["晕倒"]}
    call = place_call(speak_after_choice, ["0"], said=draft)
    assert call.collects("confirm-emergency-120") == 2
    assert call.end == EmergencyTransfer("120", reason="speech:晕倒")


def test_caller_describing_smoke_is_asked_to_confirm_119_before_transfer(
    speak_after_choice: HotlineConfig,
) -> None:
    from speech.fields import extract

    draft = extract("楼道里全是黑烟，呛得人喘不过气", speak_after_choice)
    call = place_call(speak_after_choice, ["0", "1"], said=draft)
    assert "confirm-emergency-119" in call.played()
    words = "、".join(draft["emergency_words"])
    assert call.end == EmergencyTransfer("119", reason=f"speech:{words}")


def test_caller_asking_about_last_months_fire_gets_no_119_offer(
    speak_after_choice: HotlineConfig,
) -> None:
    from speech.fields import extract

    draft = extract("上个月我家着过火，想问问保险怎么理赔", speak_after_choice)
    call = place_call(speak_after_choice, ["0"], said=draft)
    assert not any(p.startswith("confirm-emergency") for p in call.played())
    assert call.route.request.skill == "zonghe"


def test_speaking_before_the_menu_routes_a_clear_demand_without_the_menu() -> None:
    cfg = config_with(speech={"mode": "before_menu"})
    call = place_call(cfg, [], said={"seat": "jiaoyu", "confidence": {"seat": 0.9}})
    assert "main-menu" not in call.played()
    assert call.played()[:2] == ["greeting", "speak-demand"]
    assert call.route.request.skill == "jiaoyu"


def test_speaking_before_the_menu_falls_back_to_the_menu_when_nothing_was_understood() -> None:
    cfg = config_with(speech={"mode": "before_menu"})
    call = place_call(cfg, ["2"], said={"transcript": "嗯"})
    assert call.collects("main-menu") == 1
    assert call.route.request.skill == "gjj"
