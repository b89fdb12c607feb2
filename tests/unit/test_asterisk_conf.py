"""The generated Asterisk configuration, rendered from the example hotline config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acd.queues import queue_name
from asterisk_conf.render import MODULES, render, render_text
from cli.main import main
from hotline import dialplan_vars
from hotline.config import ConfigError, HotlineConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def rendered(config: HotlineConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(config, tmp_path_factory.mktemp("ast") / "etc", "demo")


def sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Asterisk config text → [(section, [(key, value), ...])], keys may repeat."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        head = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if head:
            out.append((head.group(1), []))
            continue
        key, _, value = re.split(r"\s*(=>|=)\s*", line, maxsplit=1)
        assert out, f"setting outside a section: {raw!r}"
        out[-1][1].append((key, value))
    return out


def section(text: str, name: str, type_: str | None = None) -> dict[str, list[str]]:
    for sec, items in sections(text):
        if sec != name:
            continue
        values: dict[str, list[str]] = {}
        for key, value in items:
            values.setdefault(key, []).append(value)
        if type_ is None or values.get("type") == [type_]:
            return values
    raise AssertionError(f"no section [{name}] (type {type_})")


def dialplan(text: str) -> dict[str, dict[str, list[str]]]:
    """extensions.conf → context → extension → [application lines in order]."""
    contexts: dict[str, dict[str, list[str]]] = {}
    current = ""
    exten = ""
    for sec, items in sections(text):
        contexts[sec] = {}
        current = sec
        for key, value in items:
            if key == "exten":
                exten, _, rest = value.partition(",")
                contexts[current].setdefault(exten, []).append(rest.split(",", 1)[1])
            elif key == "same":
                contexts[current][exten].append(value.split(",", 1)[1])
    return contexts


def test_every_seat_queue_has_exactly_its_agents(config: HotlineConfig, rendered: Path) -> None:
    text = (rendered / "queues.conf").read_text()
    for seat in config.seats:
        queue = section(text, queue_name(seat.id))
        members = {m.split(",")[0] for m in queue.get("member", [])}
        expected = {f"PJSIP/{a.endpoint}" for a in config.agents if seat.id in a.seats}
        assert members == expected, seat.id
        assert queue["ringinuse"] == ["no"]
        assert queue["joinempty"] == ["yes"]
        assert queue["leavewhenempty"] == ["no"]


def test_agent_1009_answers_three_seats(config: HotlineConfig, rendered: Path) -> None:
    text = (rendered / "queues.conf").read_text()
    agent = next(a for a in config.agents if len(a.seats) == 3)
    in_queues = [
        name
        for name, items in sections(text)
        if any(k == "member" and v.startswith(f"PJSIP/{agent.endpoint},") for k, v in items)
    ]
    assert sorted(in_queues) == sorted(queue_name(s) for s in agent.seats)


def test_each_agent_is_an_endpoint_with_its_static_contact(
    config: HotlineConfig, rendered: Path
) -> None:
    text = (rendered / "pjsip.conf").read_text()
    for agent in config.agents:
        endpoint = section(text, agent.endpoint, "endpoint")
        assert endpoint["context"] == ["from-agents"]
        assert endpoint["dtmf_mode"] == ["rfc4733"]
        assert endpoint["direct_media"] == ["no"]
        aor = section(text, agent.endpoint, "aor")
        assert aor["contact"] == [f"sip:{agent.endpoint}@{agent.host}:{agent.port}"]


def test_carrier_is_identified_by_address_into_from_carrier(
    config: HotlineConfig, rendered: Path
) -> None:
    text = (rendered / "pjsip.conf").read_text()
    assert section(text, "carrier", "identify")["match"] == [config.trunks.carrier.host]
    assert section(text, "carrier", "endpoint")["context"] == ["from-carrier"]
    transport = section(text, "transport-udp", "transport")
    assert transport["bind"] == [f"{config.sip.host}:{config.sip.port}"]


def test_hotline_number_answers_and_runs_the_fastagi_ivr(
    config: HotlineConfig, rendered: Path
) -> None:
    plan = dialplan((rendered / "extensions.conf").read_text())
    entry = plan["from-carrier"][config.hotline.number]
    assert entry[-1] == f"Goto(hotline-entry,{config.hotline.number},1)"
    assert not [ln for ln in entry if ln.startswith(("Answer", "AGI", "UserEvent"))]
    lines = plan["hotline-entry"][config.hotline.number]
    assert lines[0] == "Answer()"
    assert f"Set(CHANNEL(language)={config.hotline.prompt_language})" in lines
    assert f"Set({dialplan_vars.CALL_ID}=${{CHANNEL(linkedid)}})" in lines
    agi = [ln for ln in lines if ln.startswith("AGI(")]
    assert agi == [f"AGI(agi://{config.agi.host}:{config.agi.port}/ivr)"]
    assert lines.index(agi[0]) > lines.index("Answer()")


def test_failed_ivr_falls_back_to_the_general_seat(config: HotlineConfig, rendered: Path) -> None:
    plan = dialplan((rendered / "extensions.conf").read_text())
    route = plan["hotline-route"]["s"]
    assert f'"${{{dialplan_vars.AGI_STATUS}}}" != "SUCCESS"' in route[0]
    # the last step when no known route matched is the fallback
    assert route[-1].startswith("Gosub(hotline-fallback,s,1(")
    fallback = plan["hotline-fallback"]["s"]
    assert fallback[0].startswith("UserEvent(HotlineFallback,")
    general = queue_name(config.general_seat.id)
    joins = [i for i, ln in enumerate(fallback) if ln.startswith(f"Queue({general},")]
    assert len(joins) == 1 and joins[0] > 0


def test_queue_route_announces_then_queues(rendered: Path) -> None:
    queue = dialplan((rendered / "extensions.conf").read_text())["hotline-route"]["queue"]
    event = next(i for i, ln in enumerate(queue) if ln.startswith("UserEvent(HotlineRoute,"))
    join = next(
        i for i, ln in enumerate(queue) if ln.startswith(f"Queue(${{{dialplan_vars.QUEUE}}},")
    )
    assert event < join
    for key, var in (
        ("CallId", dialplan_vars.CALL_ID),
        ("Seat", dialplan_vars.SEAT),
        ("Queue", dialplan_vars.QUEUE),
        ("Path", dialplan_vars.IVR_PATH),
    ):
        assert f"{key}: ${{{var}}}" in queue[event]


def test_emergency_lines_dial_the_emergency_trunk(config: HotlineConfig, rendered: Path) -> None:
    plan = dialplan((rendered / "extensions.conf").read_text())
    for line in config.emergency.lines:
        steps = plan["emergency"][line]
        assert steps[0].startswith("UserEvent(HotlineEmergency,")
        assert f"Line: {line}" in steps[0]
        assert any(s.startswith(f"Dial(PJSIP/{line}@emergency,") for s in steps)
        # a failed emergency dial still reaches a person
        assert steps[-1].startswith("Gosub(hotline-fallback,")
    pjsip = (rendered / "pjsip.conf").read_text()
    trunk = config.trunks.emergency
    assert section(pjsip, "emergency", "aor")["contact"] == [f"sip:{trunk.host}:{trunk.port}"]


def test_agent_feature_code_sends_the_caller_to_its_line(
    config: HotlineConfig, rendered: Path
) -> None:
    code = config.emergency.agent_feature_code
    line = code.lstrip("*")
    features = section((rendered / "features.conf").read_text(), "applicationmap")
    assert features["hotline_emergency"] == [
        f"{code},self,ChannelRedirect(${{BRIDGEPEER}},hotline-agent-emergency,{line},1)"
    ]
    plan = dialplan((rendered / "extensions.conf").read_text())
    assert plan["hotline-agent-emergency"][line][-1] == f"Goto(emergency,{line},1)"
    # only agents' channels get the feature: set by the queue's pre-dial handler
    features = plan["hotline-agent-predial"]["s"][0]
    assert features.startswith("Set(DYNAMIC_FEATURES=") and "hotline_emergency" in features
    joins = [
        (context_name, exten, step)
        for context_name in ("hotline-route", "hotline-fallback")
        for exten, steps in plan[context_name].items()
        for step in steps
        if step.startswith("Queue(")
    ]
    # exactly the two ways into a queue: the IVR's route and the fail-open fallback
    assert [(c, e) for c, e, _ in joins] == [("hotline-route", "queue"), ("hotline-fallback", "s")]
    for _, _, step in joins:
        assert ",b(hotline-agent-predial^s^1)" in step, step  # (+ the recording gosub)


def test_every_jump_target_exists(rendered: Path) -> None:
    plan = dialplan((rendered / "extensions.conf").read_text())
    text = (rendered / "extensions.conf").read_text()
    targets = re.findall(r"(?:Goto|Gosub)\(([a-z-]+),([a-z0-9${}_]+),1", text)
    targets += re.findall(r"\?([a-z-]+),([0-9a-z]+),1\)", text)
    assert targets
    for context_name, exten in targets:
        if exten.startswith("$"):
            continue
        assert exten in plan[context_name], f"{context_name},{exten}"


def test_dialplan_uses_only_shared_variable_names(rendered: Path) -> None:
    text = (rendered / "extensions.conf").read_text()
    used = set(re.findall(r"\$\{(HOTLINE_[A-Z_]+)", text))
    assert used
    assert used <= set(dialplan_vars.ALL)


def test_every_module_is_required(rendered: Path) -> None:
    modules = section((rendered / "modules.conf").read_text(), "modules")
    assert modules["autoload"] == ["no"]
    assert modules["require"] == [f"{m}.so" for m in MODULES]
    for needed in ("chan_pjsip", "res_agi", "app_queue", "app_userevent", "pbx_config"):
        assert needed in MODULES


def test_ami_listens_where_configured(config: HotlineConfig, rendered: Path) -> None:
    manager = (rendered / "manager.conf").read_text()
    general = section(manager, "general")
    assert general["bindaddr"] == [config.ami.host]
    assert general["port"] == [str(config.ami.port)]
    assert section(manager, config.ami.username)["secret"] == [config.ami.secret]


def test_instance_has_its_own_directories(config: HotlineConfig) -> None:
    text = render_text(config, "itest")["asterisk.conf"]
    dirs = section(text, "directories")
    assert dirs["astetcdir"] == ["/etc/asterisk-itest"]
    assert dirs["astrundir"] == ["/var/run/asterisk-itest"]
    assert dirs["astlogdir"] == ["/var/log/asterisk-itest"]
    assert dirs["astspooldir"] == ["/var/spool/asterisk-itest"]
    assert dirs["astdatadir"] == ["/usr/share/asterisk"]


def test_a_name_with_a_line_break_cannot_add_config(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "name: 综合坐席2,", 'name: "坐席\\n[evil]\\ntype=endpoint",'
    )
    config = parse_config(text)
    out = render(config, tmp_path / "etc", "demo")
    pjsip = (out / "pjsip.conf").read_text()
    assert "[evil]" in pjsip  # the name is still shown, but only inside a comment
    assert "evil" not in [name for name, _ in sections(pjsip)]


def test_invalid_config_renders_nothing(config: HotlineConfig, tmp_path: Path) -> None:
    bad = config.model_copy(update={"agents": (*config.agents, config.agents[0])})
    out = tmp_path / "etc"
    with pytest.raises(ConfigError, match="duplicate agent id"):
        render(bad, out, "demo")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_instance_name_renders_nothing(config: HotlineConfig, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="instance name"):
        render(config, tmp_path / "etc", "../etc")
    assert list(tmp_path.iterdir()) == []


def test_rendering_again_replaces_the_directory(config: HotlineConfig, tmp_path: Path) -> None:
    out = render(config, tmp_path / "etc", "demo")
    (out / "stale.conf").write_text("old")
    render(config, out, "demo")
    assert not (out / "stale.conf").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["etc"]


def test_cli_render_refuses_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8").replace("port: 5038", "port: -1"))
    assert main(["config", "render", str(bad), str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
    assert main(["config", "render", str(EXAMPLE), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "extensions.conf").exists()


def test_caller_number_and_name_are_normalised_before_anything_else(
    config: HotlineConfig, rendered: Path
) -> None:
    """Issue 8, finding 1: the carrier context only cleans the caller fields, then leaves."""
    entry = dialplan((rendered / "extensions.conf").read_text())["from-carrier"]
    steps = entry[config.hotline.number]
    sets = [ln for ln in steps if ln.startswith("Set(CALLERID(")]
    assert [s.split("=", 1)[0] for s in sets] == [
        "Set(CALLERID(num)",
        "Set(CALLERID(name)",
        "Set(CALLERID(name)",
    ]
    assert ":anonymous)" in sets[0] and ">= 3" in sets[0] and "<= 20" in sets[0]
    assert r"FILTER(\x20-\x21\x23-\x5b\x5d-\x7e\x80-\xff," in sets[1]
    assert sets[2].endswith(":0:64})")


def test_ami_user_gets_only_consumed_events_and_nothing_before_the_answer(
    rendered: Path,
) -> None:
    from hotline.ami import CONSUMED_EVENTS

    text = (rendered / "manager.conf").read_text()
    includes = re.findall(r"^eventfilter\(action\(include\),name\((\w+)\)\) =$", text, re.M)
    assert includes == list(CONSUMED_EVENTS)
    assert not {"Newchannel", "VarSet", "Newexten", "NewCallerid"} & set(includes)
    assert "eventfilter(action(exclude),header(ChannelState),method(exact)) = 4" in text


def test_carrier_calls_without_rtp_are_hung_up(config: HotlineConfig, rendered: Path) -> None:
    carrier = section((rendered / "pjsip.conf").read_text(), "carrier", "endpoint")
    assert carrier["rtp_timeout"] == [str(config.sip.rtp_timeout_s)]
    assert carrier["rtp_timeout_hold"] == [str(config.sip.rtp_timeout_hold_s)]


def test_rendered_files_are_for_root_only(rendered: Path) -> None:
    assert (rendered.stat().st_mode & 0o777) == 0o700
    assert {p.stat().st_mode & 0o777 for p in rendered.iterdir()} == {0o600}


def test_asterisk_media_ports_come_from_the_config_and_test_stacks_keep_clear_of_theirs(
    tmp_path: Path,
) -> None:
    from hotline import safe_yaml
    from testphones.sipp import TEST_RTP_PORTS, offset_config

    example = load_config(EXAMPLE)
    text = (render(example, tmp_path / "demo", "demo") / "rtp.conf").read_text()
    assert "rtpstart = 10000" in text and "rtpend = 20000" in text
    moved = offset_config(safe_yaml.load_file(EXAMPLE), 10000)
    low, high = moved["sip"]["rtp_ports"]
    fixed = [moved[k]["port"] for k in ("sip", "ami", "agi", "redis")]
    fixed += [a["port"] for a in moved["agents"]] + [t["port"] for t in moved["trunks"].values()]
    assert (low, high) == TEST_RTP_PORTS and not [p for p in fixed if low <= p <= high]
    with pytest.raises(ConfigError, match="rtp_ports"):
        head = "sip:                      # Asterisk's PJSIP transport"
        text = EXAMPLE.read_text(encoding="utf-8")
        parse_config(text.replace(head, head + "\n  rtp_ports: [20000, 10000]"))
