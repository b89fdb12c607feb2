"""The ``acd:`` section of the one config: policy, agents' levels, cross references."""

from __future__ import annotations

from test_config import EXAMPLE, example_text, line_of, problems_of

from hotline.config import load_config, parse_config

APP_QUEUE = example_text().replace("\n  mode: router ", "\n  mode: app_queue ", 1)
"""hotline.yaml with static app_queue queues instead of the router."""


def test_example_routes_with_the_router_and_every_seat_has_a_policy() -> None:
    config = load_config(EXAMPLE)
    assert config.acd.mode == "router" and config.acd.login_at_start
    settings = config.acd_settings()
    assert set(settings.skills) == {s.id for s in config.seats}
    assert settings.fallback_skill == "zonghe"
    assert [s.level for s in settings.skills["gjj"].steps] == [1, 2, "general"]
    assert [s.level for s in settings.skills["zonghe"].steps] == ["general"]


def test_agent_profiles_come_from_seats_and_levels() -> None:
    text = example_text().replace(
        "seats: [zonghe, gjj, renshe]}", "seats: [zonghe, gjj, renshe], levels: {gjj: 2}}"
    )
    profiles = parse_config(text).acd_profiles()
    assert profiles["1002"].skills == {"gjj": 1} and not profiles["1002"].general
    assert profiles["1009"].skills == {"gjj": 2, "renshe": 1} and profiles["1009"].general


def test_older_config_without_acd_section_still_loads_with_its_static_queues() -> None:
    text = example_text().split("\nacd:", 1)[0]
    acd = parse_config(text).acd
    assert acd.mode == "app_queue" and not acd.login_at_start


def test_skill_policy_for_an_unknown_seat_is_refused_at_its_line() -> None:
    text = example_text().replace(
        "  skills: {}", "  skills:\n    fangguan: {steps: [{level: 1, after_s: 0}]}"
    )
    (field, line, msg), *_ = problems_of(text)
    assert field == "acd.skills.fangguan"
    assert line == line_of(text, "fangguan:")
    assert "fangguan" in msg


def test_level_for_a_seat_the_agent_does_not_have_is_refused() -> None:
    text = example_text().replace("seats: [gjj]}", "seats: [gjj], levels: {sifa: 1}}")
    (field, _line, msg), *_ = problems_of(text)
    assert field == "agents.1.levels.sifa"
    assert "sifa" in msg


def test_steps_out_of_order_are_refused() -> None:
    text = example_text().replace("{level: 2, after_s: 20}", "{level: 2, after_s: 60}")
    (field, line, msg), *_ = problems_of(text)
    assert field == "acd.specialist_steps"
    assert line == line_of(text, "specialist_steps:")
    assert "order" in msg


def test_router_dialplan_waits_in_the_acd_context_and_keeps_app_queue_as_fallback() -> None:
    from asterisk_conf.render import render_text

    routed = parse_config(example_text())
    text = render_text(routed)["extensions.conf"]
    assert "[hotline-acd-wait]" in text and "[hotline-acd-dial]" in text
    queue = text.split("exten => queue,1", 1)[1].split("exten => emergency", 1)[0]
    assert queue.index("hotline-acd-wait,s,1") < queue.index("Queue(${HOTLINE_QUEUE}")
    assert "Goto(hotline-route,queue,static)" in text
    assert "Goto(hotline-queue-exit,9,1)" in text
    plain = render_text(parse_config(APP_QUEUE))["extensions.conf"]
    assert "hotline-acd-wait" not in plain


def test_a_call_the_router_hands_to_an_agent_is_recorded_like_a_queued_one() -> None:
    """Issue 11 with the ACD router: its Dial runs the agent-side recording gosub (U()) that
    app_queue's Queue() runs, and neither does when recording is off."""
    from asterisk_conf.render import render_text

    routed = parse_config(example_text())
    text = render_text(routed)["extensions.conf"]
    dial = text.split("\n[hotline-acd-dial]\n", 1)[1].split("\n[", 1)[0]
    assert "U(hotline-agent-record))" in dial
    assert ",,,,,hotline-agent-record)" in text  # the app_queue fallback records too
    quiet = example_text()
    assert "  enabled: true\n  include_ivr:" in quiet
    quiet = quiet.replace("  enabled: true\n  include_ivr:", "  enabled: false\n  include_ivr:")
    off = render_text(parse_config(quiet))["extensions.conf"]
    assert "hotline-agent-record)" not in off
    assert "U(" not in off.split("\n[hotline-acd-dial]\n", 1)[1].split("\n[", 1)[0]
