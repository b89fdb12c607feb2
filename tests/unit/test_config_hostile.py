"""Hostile config files (issue 8, finding 10): each is refused with the file and the line,
before anything it describes is built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cli.main import main
from hotline import safe_yaml
from hotline.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "hotline.yaml"
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
"""The billion laughs: nine levels of nine aliases, 9**9 strings once built."""


def example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def replaced(old: str, new: str) -> str:
    text = example()
    assert text.count(old) == 1, old
    return text.replace(old, new)


def refusal(text: str) -> tuple[str, int | None, str]:
    """The one problem ``parse_config`` reports for ``text``."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "hostile.yaml")
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def test_alias_bomb_is_refused_at_its_first_anchor() -> None:
    field, line, message = refusal(BOMB + example())
    assert (field, line) == ("<yaml>", 1)
    assert "anchors (&a) are not allowed" in message


def test_alias_bomb_is_bounded_where_aliases_are_allowed() -> None:
    with pytest.raises(safe_yaml.YamlRefused) as info:
        safe_yaml.load(BOMB, "bomb.yaml", aliases=True)
    assert f"more than {safe_yaml.MAX_NODES} values" in str(info.value.problem)
    assert info.value.problem_mark is not None
    assert info.value.problem_mark.line + 1 == 5  # e: the first level past 20,000 values


def test_an_alias_alone_is_refused_in_a_config() -> None:
    text = replaced("  port: 5038\n", "  port: *ami_port\n")
    _, line, message = refusal(text)
    assert line == text.splitlines().index("  port: *ami_port") + 1
    assert "aliases (*ami_port) are not allowed" in message


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_20000_deep_nesting_is_refused_not_a_recursion_error(opening: str, closing: str) -> None:
    text = example() + "deep: " + opening * 20_000 + closing * 20_000 + "\n"
    field, line, message = refusal(text)
    assert (field, line) == ("<yaml>", len(example().splitlines()) + 1)
    assert f"nested more than {safe_yaml.MAX_DEPTH} levels deep" in message


def test_duplicate_ami_port_is_refused_naming_both_lines() -> None:
    text = replaced("  port: 5038\n", "  port: 5038\n  port: 6038\n")
    first = text.splitlines().index("  port: 5038") + 1
    field, line, message = refusal(text)
    assert (field, line) == ("<yaml>", first + 1)
    assert f"duplicate key 'port' (first on line {first})" in message


def test_a_menu_digit_cannot_be_quietly_rerouted_by_a_second_entry() -> None:
    text = replaced('      "2": seat:gjj\n', '      "2": seat:gjj\n      "2": seat:zonghe\n')
    _, line, message = refusal(text)
    assert line == text.splitlines().index('      "2": seat:zonghe') + 1
    assert "duplicate key '2'" in message


def test_keys_spelled_differently_but_equal_are_duplicates() -> None:
    with pytest.raises(safe_yaml.YamlRefused, match="duplicate key '0x1'"):
        safe_yaml.load("1: a\n0x1: b\n")
    assert safe_yaml.load("1: a\n'1': b\n") == {1: "a", "1": "b"}  # an int and a string


def test_a_50_mb_file_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(example())
        fh.write("# " + "x" * 50_000_000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [(field, line, message)] = info.value.problems
    assert field == "<file>" and line == len(example().splitlines()) + 1
    assert f"at most {safe_yaml.MAX_BYTES} are read" in message
    assert str(info.value).startswith(f"invalid hotline config\n{path}:{line}: <file>:")


def test_a_17_million_character_name_is_refused(tmp_path: Path) -> None:
    text = replaced("  name: 12345政务服务便民热线\n", "  name: " + "名" * 17_000_000 + "\n")
    path = tmp_path / "long.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [(field, line, message)] = info.value.problems
    assert (field, line) == ("<file>", 4)
    assert "bytes; at most" in message


def test_a_long_value_under_the_file_cap_is_refused_at_its_line() -> None:
    text = replaced("  name: 12345政务服务便民热线\n", "  name: " + "x" * 5000 + "\n")
    field, line, message = refusal(text)
    assert (field, line) == ("<yaml>", 4)
    assert f"a value of 5000 characters (at most {safe_yaml.MAX_SCALAR_CHARS})" in message


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("  name: 12345政务服务便民热线\n", "  name: " + "热" * 65 + "\n", "hotline.name"),
        ("{id: gjj, name: 公积金专席,", "{id: gjj, name: " + "公" * 33 + ",", "seats.1.name"),
        ("  secret: change-me-12345-ami\n", "  secret: " + "s" * 129 + "\n", "ami.secret"),
    ],
)
def test_names_are_capped_by_the_schema(old: str, new: str, field: str) -> None:
    text = replaced(old, new)
    got_field, line, message = refusal(text)
    number = next(n for n, row in enumerate(text.splitlines(), 1) if new.rstrip("\n") in row)
    assert (got_field, line) == (field, number)
    assert "at most" in message


def test_other_yaml_tricks_are_refused_with_their_line() -> None:
    cases = {
        "<<: {a: 1}\n": (1, "merge keys (<<) are not allowed"),
        "a: 1\n---\nb: 2\n": (2, "only one YAML document"),
        "? [a]\n: 1\n": (1, "a mapping key must be a plain value"),
        "a: 1\nb: x\x00\n": (2, "character U+0000 is not allowed"),
        "a: !!python/object/apply:os.system [id]\n": (1, "could not determine a constructor"),
    }
    for text, (line, message) in cases.items():
        with pytest.raises(yaml.MarkedYAMLError) as info:
            safe_yaml.load(text, "trick.yaml")
        assert info.value.problem_mark is not None, text
        assert (info.value.problem_mark.line + 1, info.value.problem_mark.name) == (
            line,
            "trick.yaml",
        ), text
        assert message in str(info.value.problem), text


def test_the_compose_file_reads_as_plain_yaml_would_read_it() -> None:
    path = REPO / "docker" / "docker-compose.yml"
    assert safe_yaml.load_file(path, aliases=True) == yaml.safe_load(path.read_text())
    with pytest.raises(safe_yaml.YamlRefused, match="anchors"):
        safe_yaml.load_file(path)


def test_every_yaml_file_in_the_repo_is_read_through_the_safe_loader() -> None:
    unsafe = re.compile(r"(?<![\w.])yaml\.((safe_|full_|unsafe_)?load(_all)?\(|(C?Safe)?Loader\b)")
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in REPO.rglob("*.py")
        if not {".venv", "run"} & set(p.relative_to(REPO).parts)
        and p.name not in ("safe_yaml.py", "test_config_hostile.py")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if unsafe.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "hostile, where, says",
    [
        (BOMB, 1, "anchors (&a) are not allowed"),
        ("x: " + "[" * 20_000 + "]" * 20_000, 1, "nested more than"),
        (None, 0, "duplicate key 'port' (first on line {ami_port})"),
    ],
)
def test_cli_config_check_refuses_hostile_files_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hostile: str | None, where: int, says: str
) -> None:
    text = (
        replaced("  port: 5038\n", "  port: 5038\n  port: 6038\n") if hostile is None else hostile
    )
    if hostile is None:  # the repeated key is on the line after ami.port in the example
        ami_port = text.splitlines().index("  port: 5038") + 1
        where, says = ami_port + 1, says.format(ami_port=ami_port)
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{where}: <yaml>: " in err and says in err
    assert "Traceback" not in err
