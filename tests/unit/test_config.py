"""The hotline config: the example loads; broken files are refused with the field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from hotline import safe_yaml
from hotline.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hotline.yaml"


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def broken(old: str, new: str) -> str:
    text = example_text()
    assert text.count(old) == 1, f"{old!r} must occur once in the example"
    return text.replace(old, new)


def problems_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "broken.yaml")
    return info.value.problems


def test_example_config_loads_with_every_seat_and_agent() -> None:
    config = load_config(EXAMPLE)
    assert config.general_seat.id == "zonghe"
    assert {s.id for s in config.seats} >= {"gjj", "renshe", "zonghe"}
    for agent in config.agents:
        assert all(seat in {s.id for s in config.seats} for seat in agent.seats)
    assert "main" in config.menus


def test_port_out_of_range_is_refused_at_its_line() -> None:
    text = broken("  port: 5038\n", "  port: 70000\n")
    problems = problems_of(text)
    assert [(f, line) for f, line, _ in problems] == [("ami.port", line_of(text, "70000"))]
    assert "65535" in problems[0][2]


def test_menu_option_to_unknown_seat_is_refused_at_its_line() -> None:
    text = broken('"2": seat:gjj', '"2": seat:gongjijin')
    problems = problems_of(text)
    fields = {f: (line, msg) for f, line, msg in problems}
    assert fields["menus.main.options.2"][0] == line_of(text, "seat:gongjijin")
    assert "gongjijin" in fields["menus.main.options.2"][1]


def test_agent_with_unknown_seat_is_refused_at_its_line() -> None:
    text = broken("seats: [jiaoyu]}", "seats: [jiaoyu, fangguan]}")
    problems = problems_of(text)
    assert len(problems) == 1
    field, line, msg = problems[0]
    assert field == "agents.6.seats"
    assert line == line_of(text, "fangguan")
    assert "fangguan" in msg


def test_yaml_syntax_error_names_the_line() -> None:
    text = broken("  timeout_ms: 50\n", "  timeout_ms: [50\n")
    problems = problems_of(text)
    assert problems[0][0] == "<yaml>"
    assert problems[0][1] is not None
    # the parser notices the unclosed list at or shortly after the broken line
    assert line_of(text, "[50") <= problems[0][1] <= line_of(text, "[50") + 3


def test_wrong_type_is_refused_at_its_line() -> None:
    text = broken("  retries: 3\n", "  retries: many\n")
    problems = problems_of(text)
    assert [(f, line) for f, line, _ in problems] == [
        ("menus.main.retries", line_of(text, "retries: many"))
    ]


def test_several_problems_are_all_reported() -> None:
    text = broken("  port: 6390\n", "  port: 0\n").replace("  retries: 3\n", "  retries: many\n")
    found = {f: line for f, line, _ in problems_of(text)}
    assert found == {
        "redis.port": line_of(text, "port: 0"),
        "menus.main.retries": line_of(text, "retries: many"),
    }


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_cli_config_check_prints_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = broken("  port: 5038\n", "  port: 70000\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:{line_of(text, '70000')}: ami.port:" in err


def test_cli_config_check_summarises_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    config = load_config(EXAMPLE)
    assert "OK" in out
    for agent in config.agents:
        assert agent.endpoint in out
    assert f"{len(config.seats)} seats, {len(config.agents)} agents" in out


# ---- the production config and containers stay consistent with the runtime --------------
DOCKER = EXAMPLE.parent / "docker"


def test_docker_config_is_the_example_with_other_addresses() -> None:
    example = load_config(EXAMPLE)
    docker = load_config(DOCKER / "hotline.docker.yaml")
    for section in ("hotline", "seats", "menus", "emergency", "caller_rules", "business_hours"):
        assert getattr(docker, section) == getattr(example, section), section
    assert [(a.id, a.seats) for a in docker.agents] == [(a.id, a.seats) for a in example.agents]
    assert docker.ami.secret != example.ami.secret


def test_compose_addresses_match_the_docker_config() -> None:

    config = load_config(DOCKER / "hotline.docker.yaml")
    compose = safe_yaml.load_file(DOCKER / "docker-compose.yml", aliases=True)
    services = compose["services"]

    def address(name: str) -> str:
        return services[name]["networks"]["hotline"]["ipv4_address"]

    assert address("asterisk") == config.ami.host
    assert address("fastagi") == config.agi.host
    assert address("redis") == config.redis.host
    assert str(config.redis.port) in services["redis"]["command"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--requirepass") + 1] == config.redis.password
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert str(config.agi.port + 1) in services["speech"]["command"]
    assert f"{config.sip.port}:{config.sip.port}/udp" in services["asterisk"]["ports"]


def test_asterisk_image_installs_the_rootfs_packages() -> None:
    from runtime.rootfs import PACKAGES

    dockerfile = (DOCKER / "asterisk.Dockerfile").read_text(encoding="utf-8")
    install = dockerfile.split("apt-get install", 1)[1].split("&&", 1)[0].split()
    assert sorted(p for p in install if not p.startswith("-") and p != "\\") == sorted(PACKAGES)
    assert "FROM debian:sid" in dockerfile


def test_hold_music_stage_uses_the_pinned_versions() -> None:
    import tomllib

    pins = tomllib.loads((EXAMPLE.parent / "pyproject.toml").read_text())["project"]
    dockerfile = (DOCKER / "asterisk.Dockerfile").read_text(encoding="utf-8")
    line = next(ln for ln in dockerfile.splitlines() if ln.startswith("RUN pip install"))
    for pin in line.split()[4:]:
        assert pin in pins["dependencies"], pin
