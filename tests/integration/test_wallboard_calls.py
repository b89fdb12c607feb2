"""The supervisors' wallboard in a real call (issue 10): the console started by the Stack
reads the call event stream the AMI bridge writes.  A caller presses 8 (教育专席) while the
seat's only agent is signed in but on a break with no phone up: the wallboard shows the
caller waiting within 2 s of joining the queue; the agent's phone comes up, he goes ready,
the ACD router rings him, and the wallboard shows the call answered and the agent on it.
Stack slot ``supervisor``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from instances import stack_instance
from redis import Redis

from acd.commands import STREAM, AgentCommand
from acd.policy import Reason
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from testphones.sipp import PhoneSet, offset_config, start_phone

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
INSTANCE, OFFSET = stack_instance("supervisor")
SEAT, AGENT, KEY = "jiaoyu", "1007", "8"
PASSWORD = "itest-wallboard-password"


@pytest.fixture(scope="module")
def board_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The ``supervisor`` stack with phones for every agent but the 教育 seat's."""
    from conftest import Hotline, _why_not_runnable

    from access import AccessStore
    from runtime.procs import StackError
    from runtime.stack import Stack

    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("hotline-wallboard")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    data["menus"]["main"]["timeout_s"] = 3
    data.setdefault("speech", {})["mode"] = "off"
    config_path = tmp / f"{INSTANCE}.yaml"
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(config_path)
    assert [a.id for a in config.agents if SEAT in a.seats] == [AGENT]
    users = AccessStore.from_config(config)  # what `hotline users add` does
    users.add_user("sup1", PASSWORD, "supervisor")
    users.close()
    stack = Stack(config_path, instance=INSTANCE, run_dir=tmp / "run")
    phones = PhoneSet()
    try:
        try:
            stack.up(require_fastagi=True, speech=False)
        except StackError as exc:
            pytest.fail(f"the wallboard stack did not come up: {exc}", pytrace=False)
        trunk = config.trunks.emergency
        for role, host, port in [
            *((a.endpoint, a.host, a.port) for a in config.agents if a.id != AGENT),
            ("emergency", trunk.host, trunk.port),
        ]:
            phones.phones[role] = start_phone(role, host, port, tmp / "phones")
        # signed in at the router's start (acd.login_at_start), then on a break: a caller
        # for his seat waits for him (no overflow to the 综合席 before 45 s)
        agent_command(config, "not_ready", AGENT, Reason.BREAK)
        yield Hotline(config, config_path, stack, phones, tmp)
    finally:
        phones.stop()
        stack.down()


def agent_command(config: HotlineConfig, op: str, agent: str, reason: Reason | None = None) -> None:
    """What the agent's phone or console button asks of the ACD router."""
    cmd = AgentCommand(op=op, agent_id=agent, reason=reason, by="itest")  # type: ignore[arg-type]
    with Redis(**config.redis.client_kwargs()) as redis:  # type: ignore[arg-type]
        redis.xadd(STREAM, cmd.fields())


async def watch(client: httpx.AsyncClient, auth: dict, seen: list) -> None:
    """Every ``board`` message, with when it arrived."""
    async with client.stream("GET", "/api/supervisor/wallboard/feed", headers=auth) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                seen.append((time.time(), json.loads(line[6:])))


def seat_of(board: dict) -> dict:
    return next(s for s in board["seats"] if s["id"] == SEAT)


def agent_of(board: dict) -> dict:
    return next(a for a in board["agents"] if a["id"] == AGENT)


async def until(seen: list, test, timeout_s: float) -> tuple[float, dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for at, board in seen:
            if test(board):
                return at, board
        await asyncio.sleep(0.05)
    raise AssertionError(f"not on the wallboard within {timeout_s} s: {seen[-1:]}")


def test_a_waiting_caller_shows_on_the_wallboard_then_is_answered(board_hotline) -> None:
    from calls.store import SqliteCallStore

    h = board_hotline
    agent = next(a for a in h.config.agents if a.id == AGENT)
    url = f"http://{h.config.console.host}:{h.config.console_port}"
    r = httpx.post(f"{url}/api/login", json={"name": "sup1", "password": PASSWORD, "bearer": True})
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    seen: list[tuple[float, dict]] = []

    async def scenario() -> tuple[dict, float, dict]:
        async with httpx.AsyncClient(base_url=url, timeout=None) as client:
            reader = asyncio.create_task(watch(client, auth, seen))
            await until(seen, lambda b: True, 15)
            before = seat_of(seen[-1][1])
            call = asyncio.create_task(h.place_async(h.spec(KEY, hold_s=4)))
            waiting_at, _ = await until(
                seen, lambda b: seat_of(b)["waiting"] == before["waiting"] + 1, 90
            )
            # the seat's agent's phone comes up and he goes ready: the router rings him
            h.phones.phones[agent.endpoint] = start_phone(
                agent.endpoint, agent.host, agent.port, h.workdir / "phones"
            )
            agent_command(h.config, "ready", AGENT)
            _, answered = await until(
                seen,
                lambda b: agent_of(b)["state"] == "on_call" and agent_of(b)["seat"] == SEAT,
                60,
            )
            facts = await call
            await asyncio.sleep(1.5)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return facts, waiting_at, {"before": before, "answered": answered}

    facts, waiting_at, boards = asyncio.run(scenario())
    assert facts["sipp"]["ok"] and facts["agent"] is not None, facts
    assert facts["agent"]["endpoint"] == agent.endpoint
    store = SqliteCallStore(h.config.calls.path)
    record = asyncio.run(store.get(facts["linkedid"]))
    asyncio.run(store.close())
    assert record is not None and record.queued_at is not None and record.seat == SEAT
    shown_after = waiting_at - record.queued_at
    assert shown_after <= 2.0, f"waiting shown {shown_after:.2f} s after the caller joined"
    s = seat_of(boards["answered"])
    assert s["waiting"] == boards["before"]["waiting"]
    assert s["answered"] == boards["before"]["answered"] + 1
    assert s["offered"] == boards["before"]["offered"] + 1
    assert agent_of(boards["answered"])["call_id"] == facts["linkedid"]
    after = seat_of(seen[-1][1])
    assert after["service_level"] is not None
    print(f"waiting caller on the wallboard {shown_after:.2f} s after joining the queue")
