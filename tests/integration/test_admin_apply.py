"""An admin changes a menu key on the running hotline (issue 12), on the real stack: Asterisk,
the FastAGI IVR, Redis, sipp callers and agents.

While one caller talks to an agent and another sits in the IVR, key 2 moves from 公积金 to
交通: neither call is dropped (the caller in the IVR finishes on the config it started with),
the next call follows the new key; a broken config is refused and the next call behaves as
before; a rollback brings key 2 back to 公积金 for the next call.  Then a seat rename reloads
app_queue's queues while a caller waits in one: the caller keeps their place and is answered.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from instances import stack_instance

from admin.lifecycle import ConfigError, Lifecycle, StackTarget
from admin.versions import VersionStore
from admin.yaml_edit import set_value
from cli.commands.call import first_key_after
from hotline import dialplan_vars as V
from hotline import safe_yaml
from hotline.config import load_config
from testphones.sipp import offset_config, start_phones

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTANCE, OFFSET = stack_instance("admin")
KEY2 = "menus.main.options.2"


@pytest.fixture(scope="module")
def admin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from conftest import Hotline, _why_not_runnable

    from runtime.procs import StackError
    from runtime.stack import Stack

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("hotline-admin")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    # a caller may sit in the main menu ~40 s without pressing a key
    data["menus"]["main"]["timeout_s"] = 10
    data["menus"]["main"]["retries"] = 3
    data.setdefault("speech", {})["mode"] = "off"
    data["admin"] = {"versions_db": str(tmp / "config-versions.sqlite3")}
    # a caller waiting for the busy 交通 agent waits for him: his wrap-up short, the 综合席
    # overflow late (the ACD router's escalation, docs/acd.md)
    data["acd"] = {**data["acd"], "wrapup_s": 2}
    data["acd"]["specialist_steps"] = [
        {"level": 1, "after_s": 0},
        {"level": "general", "after_s": 120},
    ]
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones = None
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the admin stack did not come up: {exc}", pytrace=False)
        phones = start_phones(config, tmp / "phones")
        yield Hotline(config, config_path, stack, phones, tmp, 0)
    finally:
        if phones is not None:
            phones.stop()
        stack.down()


def console_post(h: object, path: str, body: dict) -> dict:
    """POST to the stack's own console as a fresh admin user (bearer token)."""
    from access import AccessStore

    config = h.config  # type: ignore[attr-defined]
    users = AccessStore.from_config(config)
    password = "admin-apply-test-password"
    if not any(u.name == "admin2" for u in users.users()):
        users.add_user("admin2", password, "admin")
    users.close()
    base = f"http://{config.console.host}:{config.console_port}"

    def post(url: str, data: dict, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, json.dumps(data).encode(), headers, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    login = post(base + "/api/login", {"name": "admin2", "password": password, "bearer": True})
    return post(base + path, body, login["token"])


def channels(stack: object) -> list[list[str]]:
    out = stack.cli("core show channels concise")  # type: ignore[attr-defined]
    return [line.split("!") for line in out.splitlines() if line.startswith("PJSIP/")]


def wait_for(stack: object, what: str, test: object, timeout_s: float = 60.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = channels(stack)
        if test(found):  # type: ignore[operator]
            return found
        time.sleep(0.3)
    raise AssertionError(f"not seen within {timeout_s} s: {what}; channels: {channels(stack)}")


def talking_and_in_ivr(found: list[list[str]]) -> bool:
    """A caller bridged to an agent and another caller in the IVR (AGI) at the same time."""
    agent_up = any(re.match(r"PJSIP/agent\d+-", c[0]) and c[4] == "Up" for c in found)
    in_ivr = any(c[0].startswith("PJSIP/carrier-") and c[5] == "AGI" for c in found)
    return agent_up and in_ivr


def test_menu_key_apply_keeps_calls_up_then_broken_config_and_rollback(admin_stack) -> None:
    h = admin_stack
    life = Lifecycle(
        h.config_path, VersionStore(h.config.admin.versions_db), INSTANCE, StackTarget(h.stack)
    )
    v1 = life.running()
    assert str(h.config.menus["main"].options["2"]) == "seat:gjj"
    first_key = first_key_after(h.config)

    async def apply_during_two_calls() -> tuple[dict, dict, object]:
        talker = h.spec("1", caller="13700000001", hold_s=14)  # 人社, then talks
        sitter = h.spec("2", caller="13700000002", key_after_s=first_key + 10, hold_s=4)
        calls = [asyncio.create_task(h.place_async(s)) for s in (talker, sitter)]
        await asyncio.to_thread(wait_for, h.stack, "a caller talking, one in the IVR",
                                talking_and_in_ivr)  # fmt: skip
        applied = await asyncio.to_thread(
            life.apply, set_value(v1.text, KEY2, "seat:jiaotong"), v1.id, "admin1", "2→交通"
        )
        still = channels(h.stack)
        assert talking_and_in_ivr(still), f"a call was dropped by the apply: {still}"
        a, b = await asyncio.gather(*calls)
        return a, b, applied

    talker, sitter, (v2, preview, out) = asyncio.run(apply_during_two_calls())
    assert preview.services == ["fastagi"] and "menus main" in out["fastagi"], out
    for call in (talker, sitter):
        assert call["sipp"]["ok"], call["sipp"]  # the caller hung up itself, at the end
        assert call["hangup_cause"] == "Normal Clearing", call
        assert call["agent"] is not None, call
    assert talker["seat"] == "renshe" and talker["duration_s"] > 14
    # the caller who was in the menu during the apply finishes on the config it started with
    assert sitter["seat"] == "gjj" and sitter["ivr_path"] == "main>2"

    nxt = h.place_call("2", caller="13700000003", hold_s=6)
    assert nxt["seat"] == "jiaotong" and nxt["agent"]["endpoint"] == "agent1003", nxt

    rendered = h.stack.run / "asterisk-etc" / "extensions.conf"
    before = (h.config_path.read_bytes(), rendered.read_bytes(), rendered.stat().st_mtime_ns)
    with pytest.raises(ConfigError) as refused:
        life.apply(set_value(v2.text, KEY2, "seat:nosuch"), v2.id, "admin1", "bad")
    assert refused.value.problems[0][0] == KEY2
    assert (h.config_path.read_bytes(), rendered.read_bytes(), rendered.stat().st_mtime_ns) == (
        before
    )
    same = h.place_call("2", caller="13700000004", hold_s=6)
    assert same["seat"] == "jiaotong", same

    # the rollback goes through the console the stack started (its own process)
    rolled = console_post(h, "/api/admin/config/rollback", {"version": v1.id, "base": v2.id})
    v3 = life.store.running()
    assert rolled["version"]["id"] == v3.id and (v3.kind, v3.text, v3.who) == (
        "rollback",
        v1.text,
        "admin2",
    )
    assert "menus main" in rolled["reload"]["fastagi"], rolled
    back = h.place_call("2", caller="13700000005", hold_s=6)
    assert back["seat"] == "gjj" and back["agent"]["endpoint"] in h.agents_for("gjj"), back


def talking_and_waiting(found: list[list[str]]) -> bool:
    """The 交通 agent bridged to one caller while another caller waits in a queue."""
    agent_up = any(c[0].startswith("PJSIP/agent1003-") and c[4] == "Up" for c in found)
    queued = any(
        c[0].startswith("PJSIP/carrier-") and (c[5] == "Queue" or c[1] == V.ACD_WAIT_CONTEXT)
        for c in found
    )  # app_queue's queue or the ACD router's waiting room
    return agent_up and queued


def test_a_queue_reload_keeps_the_waiting_caller_who_is_then_answered(admin_stack) -> None:
    """Renaming the 交通 seat reloads app_queue's queues while one caller talks to the only
    交通 agent and a second caller waits for him: nobody is dropped, and the waiting caller
    keeps their place and is answered by that agent when the first call ends."""
    h = admin_stack
    life = Lifecycle(
        h.config_path, VersionStore(h.config.admin.versions_db), INSTANCE, StackTarget(h.stack)
    )
    base = life.running()
    first_key = first_key_after(h.config)

    async def apply_while_one_waits() -> tuple[dict, dict, object]:
        # the talker hangs up well after the waiter has queued; the waiter then talks ~20 s
        talker = h.spec("3", caller="13700000011", hold_s=2 * first_key + 25)
        waiter = h.spec(
            "3", caller="13700000012", key_after_s=first_key + 4, hold_s=2 * first_key + 45
        )
        calls = [asyncio.create_task(h.place_async(talker))]
        await asyncio.to_thread(
            wait_for, h.stack, "the 交通 agent talking",
            lambda f: any(c[0].startswith("PJSIP/agent1003-") and c[4] == "Up" for c in f),
        )  # fmt: skip
        calls.append(asyncio.create_task(h.place_async(waiter)))
        await asyncio.to_thread(wait_for, h.stack, "a caller waiting for 交通", talking_and_waiting)
        renamed = base.text.replace("name: 交通专席", "name: 交通运输专席", 1)
        assert renamed != base.text
        applied = await asyncio.to_thread(life.apply, renamed, base.id, "admin1", "seat name")
        still = channels(h.stack)
        assert talking_and_waiting(still), f"the apply dropped a call: {still}"
        a, b = await asyncio.gather(*calls)
        return a, b, applied

    talker, waiter, (_, preview, out) = asyncio.run(apply_while_one_waits())
    assert preview.commands == ["queue reload all"], (preview.commands, out)
    for call in (talker, waiter):
        assert call["sipp"]["ok"], call["sipp"]  # each caller hung up itself, at the end
        assert call["hangup_cause"] == "Normal Clearing", call
        assert call["seat"] == "jiaotong" and call["agent"]["endpoint"] == "agent1003", call
