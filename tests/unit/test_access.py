"""Console users without a console: argon2 hashes, a 0600 database, sessions, login limits and
the ``hotline users`` command (password from stdin or a prompt, never the command line)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from access import AccessError, AccessStore, LoginRefused, LoginThrottled
from cli.main import main

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-enough-password"


def test_passwords_are_kept_as_argon2id_hashes_in_a_file_only_the_owner_reads(
    tmp_path: Path,
) -> None:
    store = AccessStore(tmp_path / "secrets" / "access.sqlite3")
    store.add_user("sup", PASSWORD, "supervisor")
    raw = (tmp_path / "secrets" / "access.sqlite3").read_bytes()
    assert PASSWORD.encode() not in raw and b"$argon2id$v=19$m=65536,t=3,p=4$" in raw
    assert stat.S_IMODE((tmp_path / "secrets" / "access.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    token, user, _ = store.login("sup", PASSWORD, "127.0.0.1")
    assert user.role == "supervisor" and token.encode() not in raw
    assert store.session(token) == user and store.session(token + "x") is None


def test_bad_users_are_refused_with_the_reason(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "a.sqlite3")
    for args, why in (
        (("x y", PASSWORD, "qa"), "user name"),
        (("q", PASSWORD, "root"), "not one of"),
        (("q", "short", "qa"), "12-256"),
        (("q", PASSWORD, "agent"), "--agent"),
        (("q", PASSWORD, "qa", "1002"), "--agent"),
        (("q", PASSWORD, "department"), "--department"),
        (("q", PASSWORD, "qa", None, "人社局"), "--department"),
        (("q", PASSWORD, "department", None, "x" * 65), "1-64"),
    ):
        with pytest.raises(AccessError, match=why):
            store.add_user(*args)
    store.add_user("q", PASSWORD, "qa")
    with pytest.raises(AccessError, match="exists"):
        store.add_user("q", PASSWORD, "qa")
    with pytest.raises(AccessError, match="no user"):
        store.disable("nobody")
    with pytest.raises(LoginRefused):
        store.login("nobody", PASSWORD, "127.0.0.1")


def test_the_per_user_limit_holds_for_a_user_name_across_addresses(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "a.sqlite3")
    store.add_user("sup", PASSWORD, "supervisor")
    for i in range(5):
        with pytest.raises(LoginRefused):
            store.login("sup", "wrong-password-x", f"10.0.0.{i}")
    with pytest.raises(LoginThrottled) as throttled:
        store.login("sup", PASSWORD, "10.0.0.99")
    assert 0 < throttled.value.retry_s <= 15 * 60 + 1


def _config(tmp_path: Path) -> str:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    path = tmp_path / "h.yaml"
    path.write_text(text.replace("run/console-access.sqlite3", str(tmp_path / "u.sqlite3")))
    return str(path)


def test_hotline_users_add_passwd_disable_list(tmp_path: Path, monkeypatch, capsys) -> None:
    config = _config(tmp_path)

    def users(*args: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return main(["users", "--config", config, *args])

    assert users("add", "a1002", "--role", "agent", "--agent", "1002", "--password-stdin",
                 stdin=PASSWORD + "\n") == 0  # fmt: skip
    assert users("add", "a9", "--role", "agent", "--agent", "9999", "--password-stdin",
                 stdin=PASSWORD + "\n") == 1  # fmt: skip
    assert "no agent '9999'" in capsys.readouterr().err
    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    assert users("add", "boss", "--role", "supervisor") == 0  # typed at the prompt
    store = AccessStore(tmp_path / "u.sqlite3")
    token, _, _ = store.login("a1002", PASSWORD, "127.0.0.1")
    assert users("passwd", "a1002", "--password-stdin", stdin="a-new-password-123\n") == 0
    assert store.session(token) is None  # a new password ends the sessions
    assert store.login("a1002", "a-new-password-123", "127.0.0.1")
    assert users("add", "gjj", "--role", "department", "--department", "市住房公积金中心",
                 "--password-stdin", stdin=PASSWORD + "\n") == 0  # fmt: skip
    assert users("disable", "boss") == 0
    with pytest.raises(LoginRefused):
        store.login("boss", PASSWORD, "127.0.0.1")
    capsys.readouterr()
    assert users("list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "a1002\tagent agent 1002",
        "boss\tsupervisor (disabled)",
        "gjj\tdepartment 市住房公积金中心",
    ]
    with pytest.raises(SystemExit):  # there is no way to give the password as an argument
        main(["users", "--config", config, "add", "x", "--role", "qa", "--password", PASSWORD])
