"""Callers answered by the knowledge base in the IVR (第十一条): the flow, driven by a fake
transport whose knowledge base has one article for 公积金提取."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from test_ivr_flow import config_with

from hotline.config import HotlineConfig
from ivr import actions
from ivr.actions import (
    TERMINAL,
    Article,
    CallInfo,
    Collect,
    Digits,
    Done,
    Hangup,
    Heard,
    Listen,
    LookUp,
    Play,
    Route,
)
from ivr.flow import KB_MENU, KB_PLAYS, call_flow

RENT = Article("gjj-rent", 3, "租房提取公积金", "kb-gjj-rent-about", "kb-gjj-rent")
ASKED = {
    "transcript": "我想问一下租房子能取公积金吗",
    "type": "咨询",
    "seat": "gjj",
    "confidence": {"seat": 0.9},
}


def speech_config(self_service: tuple[str, ...] = ("gjj",)) -> HotlineConfig:
    return config_with(speech={"mode": "after_choice"}, kb={"self_service": list(self_service)})


def call(
    config: HotlineConfig,
    keys: Iterable[str],
    said: dict[str, object] | None = ASKED,
    found: Article = RENT,
) -> tuple[list[actions.Action], list[str]]:
    """Press ``keys`` (one per Collect, then silence); the knowledge base answers ``found``.
    Returns every action and the transcripts looked up."""
    pending, looked_up = list(keys), []
    flow = call_flow(config, CallInfo(call_id="call-1", caller="13805712345"))
    action = next(flow)
    seen = [action]
    while not isinstance(action, TERMINAL):
        assert len(seen) < 100, "the flow did not end"
        if isinstance(action, Collect):
            result: actions.Result = Digits(pending.pop(0) if pending else "")
        elif isinstance(action, Listen):
            result = Heard(transcript="…", draft=said)
        elif isinstance(action, LookUp):
            looked_up.append(action.transcript)
            result = found
        else:
            assert isinstance(action, Play), action
            result = Done()
        action = flow.send(result)
        seen.append(action)
    with pytest.raises(StopIteration):
        flow.send(Done())
    return seen, looked_up


def offers(seen: list[actions.Action]) -> int:
    return sum(isinstance(a, Collect) and a.prompts == (RENT.about, RENT.answer, KB_MENU)
               for a in seen)  # fmt: skip


def test_caller_hears_the_article_presses_2_and_the_call_ends_as_self_served() -> None:
    seen, looked_up = call(speech_config(), ["2", "2"])
    assert looked_up == [ASKED["transcript"]]
    assert offers(seen) == 1
    end = seen[-1]
    assert isinstance(end, Hangup) and end.reason == "self_served"
    assert end.ivr_path == "main>2>kb>2"
    assert isinstance(seen[-2], Play) and seen[-2].prompts == ("goodbye",)


def test_caller_presses_1_to_hear_it_again_then_0_for_an_agent_who_sees_what_was_played() -> None:
    seen, _ = call(speech_config(), ["2", "1", "0"])
    assert offers(seen) == 2
    route = seen[-1]
    assert isinstance(route, Route) and route.request.skill == "gjj"
    assert route.ivr_path == "main>2>kb>1>0"
    played = route.request.fields["kb_played"]
    assert played == {"article": "gjj-rent", "version": 3, "title": "租房提取公积金"}
    assert route.request.fields["draft"] == ASKED


def test_a_silent_caller_after_the_article_reaches_an_agent() -> None:
    seen, _ = call(speech_config(), ["2"])
    assert offers(seen) == 1 and isinstance(seen[-1], Route)
    assert seen[-1].request.fields["kb_played"]["article"] == "gjj-rent"


def test_a_caller_who_keeps_pressing_1_still_reaches_an_agent() -> None:
    seen, _ = call(speech_config(), ["2"] + ["1"] * 10)
    assert offers(seen) == KB_PLAYS and isinstance(seen[-1], Route)


def test_self_service_is_off_unless_the_seat_is_listed() -> None:
    for config in (config_with(speech={"mode": "after_choice"}), speech_config(("renshe",))):
        seen, looked_up = call(config, ["2"])
        assert looked_up == [] and offers(seen) == 0
        assert isinstance(seen[-1], Route) and "kb_played" not in seen[-1].request.fields


def test_only_consultations_are_offered_an_article() -> None:
    for kind in ("投诉", "举报", "求助", None):
        seen, looked_up = call(speech_config(), ["2"], said={**ASKED, "type": kind})
        assert looked_up == [] and isinstance(seen[-1], Route), kind


def test_no_confident_article_or_no_words_goes_to_the_agent_as_before() -> None:
    seen, looked_up = call(speech_config(), ["2"], found=Article())
    assert looked_up and offers(seen) == 0
    assert isinstance(seen[-1], Route) and "kb_played" not in seen[-1].request.fields
    seen, looked_up = call(speech_config(), ["2"], said={**ASKED, "transcript": "  "})
    assert looked_up == [] and isinstance(seen[-1], Route)
    seen, looked_up = call(speech_config(), ["2"], said=None)
    assert looked_up == [] and isinstance(seen[-1], Route)
