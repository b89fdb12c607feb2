"""Admins change the running config: validated like ``hotline config check``, diffed, applied
to the running stack (here a recording stand-in), versioned and rolled back (issue 12)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from admin.lifecycle import (
    ApplyFailed,
    ConfigError,
    Lifecycle,
    StaleBase,
    mask,
    secrets_of,
    unmask,
)
from admin.versions import VersionStore
from hotline.config import HotlineConfig, parse_config

REPO = Path(__file__).resolve().parents[2]


class RecordingStack:
    """The running instance: remembers what it was told to run; can be made to fail."""

    def __init__(self) -> None:
        self.applied: list[tuple[HotlineConfig, list[str]]] = []
        self.fail_next = False

    def running(self) -> bool:
        return True

    def put_in_place(self, config: HotlineConfig, commands: list[str]) -> dict[str, str]:
        self.applied.append((config, commands))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("dialplan reload did not take effect")
        return {c: "ok" for c in commands}


@pytest.fixture
def life(tmp_path: Path) -> Lifecycle:
    path = tmp_path / "hotline.yaml"
    path.write_text((REPO / "hotline.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    store = VersionStore(tmp_path / "versions.sqlite3")
    return Lifecycle(path, store, "demo", RecordingStack())


def rekey(text: str, old: str = '"2": seat:gjj', new: str = '"2": seat:jiaotong') -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_first_look_adopts_the_running_file_as_version_1(life: Lifecycle) -> None:
    v = life.running()
    assert (v.id, v.kind, v.who) == (1, "adopted", "system")
    assert v.text == life.path.read_text(encoding="utf-8")
    assert life.running().id == 1  # not adopted twice


def test_admin_moves_key_2_to_jiaotong_and_the_stack_rereads_it(life: Lifecycle) -> None:
    base = life.running()
    version, preview, _ = life.apply(rekey(base.text), base.id, "admin1", "2 → 交通")
    assert (version.id, version.who, version.comment, version.based_on) == (
        2,
        "admin1",
        "2 → 交通",
        1,
    )
    assert life.store.running().id == 2
    assert '"2": seat:jiaotong' in life.path.read_text(encoding="utf-8")
    assert '-      "2": seat:gjj' in preview.yaml_diff
    assert '+      "2": seat:jiaotong' in preview.yaml_diff
    assert preview.services == ["fastagi"]
    config, commands = life.target.applied[-1]  # type: ignore[union-attr]
    assert str(config.menus["main"].options["2"]) == "seat:jiaotong"
    assert commands == preview.commands
    assert stat.S_IMODE(os.stat(life.path).st_mode) == 0o600  # it holds the AMI secret


def test_renaming_a_seat_reloads_only_the_queues(life: Lifecycle) -> None:
    base = life.running()
    text = base.text.replace("name: 公积金", "name: 住房公积金", 1)
    preview = life.preview(text)
    assert set(preview.asterisk_diffs) == {"queues.conf"}
    assert preview.commands == ["queue reload all"]
    assert "住房公积金" in preview.asterisk_diffs["queues.conf"]


def test_second_admins_stale_apply_is_refused_and_the_first_change_stays(life: Lifecycle) -> None:
    base = life.running()
    life.apply(rekey(base.text), base.id, "admin1", "first")
    with pytest.raises(StaleBase) as refused:
        life.apply(rekey(base.text, '"3": seat:jiaotong', '"3": seat:gjj'), base.id, "admin2", "x")
    assert (refused.value.base, refused.value.running) == (1, 2)
    assert '"2": seat:jiaotong' in life.path.read_text(encoding="utf-8")
    assert [v.id for v in life.store.history()] == [2, 1]


def test_two_admins_applying_at_the_same_moment_one_wins(life: Lifecycle) -> None:
    base = life.running()
    texts = [rekey(base.text), rekey(base.text, '"3": seat:jiaotong', '"3": seat:gjj')]
    outcomes: list[str] = []

    def apply(i: int) -> None:
        try:
            life.apply(texts[i], base.id, f"admin{i}", "same time")
            outcomes.append("applied")
        except StaleBase:
            outcomes.append("stale")

    threads = [threading.Thread(target=apply, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["applied", "stale"]
    assert life.path.read_text(encoding="utf-8") == life.store.running().text


def drop_119(text: str) -> str:
    """Line 119 gone from the emergency lines and from the emergency menu."""
    return rekey(rekey(text, '"119": 消防, ', ""), '      "2": emergency:119\n', "")


@pytest.mark.parametrize(
    ("edit", "field", "line_of"),
    [
        (lambda t: rekey(t, '"2": seat:gjj', '"2": seat:nosuch'), "menus.main.options.2", '"2":'),
        (lambda t: t.replace("  main:\n", "  main\n", 1), "<yaml>", None),
        (lambda t: drop_119(t), "emergency.lines", "  lines:"),
    ],
    ids=["unknown-seat", "yaml-syntax", "emergency-line-removed"],
)
def test_broken_config_is_refused_with_its_line_and_nothing_changes(
    life: Lifecycle, edit, field: str, line_of: str | None
) -> None:
    base = life.running()
    before = life.path.read_bytes()
    mtime = life.path.stat().st_mtime_ns
    text = edit(base.text)
    assert text != base.text
    with pytest.raises(ConfigError) as refused:
        life.apply(text, base.id, "admin1", "broken")
    problems = refused.value.problems
    assert any(f == field for f, _, _ in problems), problems
    line = next(n for f, n, _ in problems if f == field)
    assert line is not None
    if line_of is not None:
        assert line_of in text.splitlines()[line - 1]
    assert life.path.read_bytes() == before and life.path.stat().st_mtime_ns == mtime
    assert life.target.applied == []  # type: ignore[union-attr]  # never reached Asterisk
    assert life.store.running().id == base.id


def test_a_failed_reload_puts_the_old_config_back_and_records_nothing(life: Lifecycle) -> None:
    base = life.running()
    life.target.fail_next = True  # type: ignore[union-attr]
    with pytest.raises(ApplyFailed, match="previous config runs"):
        life.apply(rekey(base.text), base.id, "admin1", "x")
    assert life.path.read_text(encoding="utf-8") == base.text
    old, _ = life.target.applied[-1]  # type: ignore[union-attr]
    assert str(old.menus["main"].options["2"]) == "seat:gjj"
    assert life.store.running().id == base.id and len(life.store.history()) == 1


def test_rollback_applies_the_old_text_as_a_new_version(life: Lifecycle) -> None:
    v1 = life.running()
    v2, _, _ = life.apply(rekey(v1.text), v1.id, "admin1", "2 → 交通")
    v3, preview, _ = life.rollback(v1.id, v2.id, "admin2")
    assert (v3.id, v3.kind, v3.comment, v3.text) == (
        3,
        "rollback",
        "rollback to version 1",
        v1.text,
    )
    assert '+      "2": seat:gjj' in preview.yaml_diff
    assert life.path.read_text(encoding="utf-8") == v1.text
    assert '"2": seat:gjj' in life.diff(2)  # version 2 → what runs


def test_a_hand_edit_since_the_last_apply_becomes_a_version(life: Lifecycle) -> None:
    base = life.running()
    life.path.write_text(rekey(base.text), encoding="utf-8")
    v = life.running()
    assert (v.id, v.kind, v.comment) == (2, "adopted", "found on disk")
    with pytest.raises(StaleBase):
        life.apply(base.text, base.id, "admin1", "based on the old one")


def test_secrets_never_leave_in_a_diff_and_placeholders_keep_them(life: Lifecycle) -> None:
    base = life.running()
    config = parse_config(base.text)
    secrets = secrets_of(config)
    shown = mask(base.text, secrets)
    assert config.ami.secret not in shown and config.redis.password not in shown
    assert "hidden.ami.secret" in shown
    assert unmask(shown, secrets) == base.text
    text = rekey(base.text).replace(config.ami.secret, "another-ami-secret-1")
    out = life.preview(text).as_dict(secrets_of(config, parse_config(text)))
    assert "another-ami-secret-1" not in str(out) and config.ami.secret not in str(out)


def test_the_version_store_is_for_root_only(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "v" / "versions.sqlite3")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700


def test_who_and_comment_are_one_bounded_line(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "versions.sqlite3")
    v = store.adopt("a: 1\n", who="ad\nmin", comment="x" * 900 + "\x1b[2J")
    assert v.who == "ad min" and len(v.comment) == 500 and "\x1b" not in v.comment


def test_form_edits_change_only_their_line(life: Lifecycle) -> None:
    from admin.yaml_edit import EditError, add_key, remove_key, set_value

    text = life.running().text
    moved = set_value(text, "menus.main.options.2", "seat:jiaotong")
    assert unified_lines(text, moved) == ['-      "2": seat:gjj', '+      "2": seat:jiaotong']
    renamed = set_value(text, "seats.1.name", "住房 公积金")
    assert '{id: gjj, name: "住房 公积金", prompt: seat-gjj}' in renamed
    assert parse_config(renamed).seat("gjj").name == "住房 公积金"
    added = add_key(text, "menus.notices.options", "4", "seat:zonghe")
    assert unified_lines(text, added) == ['+      "4": seat:zonghe']
    assert str(parse_config(added).menus["notices"].options["4"]) == "seat:zonghe"
    removed = remove_key(text, "menus.main.options.*")
    assert "*" not in parse_config(removed).menus["main"].options
    limit = set_value(text, "throttle.warning.calls_per_hour", 6)
    assert parse_config(limit).throttle.warning.calls_per_hour == 6
    prompts = set_value(text, "menus.main.prompts", ["greeting", "main-menu-v2"])
    assert parse_config(prompts).menus["main"].prompts == ("greeting", "main-menu-v2")
    for bad in (
        lambda: set_value(text, "menus.main.options.#", "seat:gjj"),
        lambda: add_key(text, "seats.1", "x", "y"),
        lambda: remove_key(text, "emergency.lines.119"),
        lambda: set_value(text, "menus", "x"),
    ):
        with pytest.raises(EditError):
            bad()


def unified_lines(old: str, new: str) -> list[str]:
    import difflib

    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


def test_every_admin_config_endpoint_refuses_other_roles_and_audits_it(
    life: Lifecycle, tmp_path: Path
) -> None:
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from access import AccessStore
    from console.app import Services, make_app

    config = parse_config(life.path.read_text(encoding="utf-8"))
    access = AccessStore(
        tmp_path / "access.sqlite3",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    password = "unit-test-password"
    users = (("a1002", "agent", "1002", None), ("sup", "supervisor", None, None),
             ("qa1", "qa", None, None), ("gjj", "department", None, "市住房公积金中心"),
             ("boss", "admin", None, None))  # fmt: skip
    for name, role, agent, department in users:
        access.add_user(name, password, role, agent, department)
    app = make_app(config, Services(), access=access, admin=life)
    routes = [
        ("GET", "/api/admin/config", None),
        (
            "POST",
            "/api/admin/config/edit",
            {"text": "a: 1", "edits": [{"op": "remove", "path": "a"}]},
        ),
        ("POST", "/api/admin/config/preview", {"text": "a: 1"}),
        ("POST", "/api/admin/config/apply", {"text": "a: 1", "base": 1, "comment": "x"}),
        ("GET", "/api/admin/config/versions", None),
        ("GET", "/api/admin/config/versions/1", None),
        ("GET", "/api/admin/config/versions/1/diff", None),
        ("POST", "/api/admin/config/rollback", {"version": 1, "base": 1}),
    ]
    mounted = {p for p in app.openapi()["paths"] if p.startswith("/api/admin/config")}
    assert mounted == {p.replace("/1", "/{version}") for _, p, _ in routes}
    with TestClient(app) as client:
        refused_roles = ("a1002", "sup", "qa1", "gjj")
        for name in refused_roles:
            token = client.post(
                "/api/login", json={"name": name, "password": password, "bearer": True}
            ).json()["token"]
            client.cookies.clear()
            for method, path, body in routes:
                r = client.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert r.status_code == 403, (name, path, r.status_code)
        refused = [r for r in access.audit(1000) if r["outcome"] == 403]
        assert len(refused) == len(refused_roles) * len(routes)
        assert life.store.history() == []  # nothing was read, written or recorded
        client.cookies.clear()
        token = client.post(
            "/api/login", json={"name": "boss", "password": password, "bearer": True}
        ).json()["token"]
        ok = client.get("/api/admin/config", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["version"]["id"] == 1
        assert config.ami.secret not in ok.text
    access.close()
