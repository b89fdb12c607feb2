"""Real calls: priority rules, a supervisor's boost, wrap-up and re-entry with the ACD router
(issue 9).

The ``acdprio`` stack is the ACD stack of test_acd_calls.py (``running_acd``) with an elderly
key (``#`` in the main menu, priority 2) and a longer wrap-up.  Only the 公积金 specialist
1002 ever becomes ready; the 综合席 agents stay on break, so every order seen is the queue's.
Times come from AMI events (``DialBegin`` is the INVITE towards the agent's phone), stamped
by one AMI client for the whole scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from test_acd_calls import GENERAL, GENERAL2, GJJ, KEY_AFTER_S, Acd, running_acd

from acd.call_commands import PriorityCommand
from acd.commands import STREAM
from acd.policy import AgentState
from hotline.ami import AmiClient

pytestmark = pytest.mark.integration

WRAPUP_S = 4
ELDERLY_KEY = "#"
A, B = "13800000101", "13800000202"
"""Two callers' numbers (the re-entry scenario)."""


def tweak(data: dict) -> None:
    data["acd"]["wrapup_s"] = WRAPUP_S
    data["acd"]["reentry_s"] = 120
    data["acd"]["priority_rules"] = [
        {"when": "exhausted", "priority": 1},
        {"when": "elderly", "key": ELDERLY_KEY, "priority": 2},
    ]


@pytest.fixture(scope="module")
def acd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acd]:
    with running_acd(tmp_path_factory, kind="acdprio", tweak=tweak) as running:
        yield running


class Watch:
    """Every AMI event of the scenario, stamped with ``time.monotonic()`` on arrival."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, str]]] = []

    def dials(self, agent: str) -> list[tuple[float, str]]:
        """(t, caller's linkedid) of each INVITE towards ``agent``'s phone."""
        return [
            (t, e.get("Linkedid", ""))
            for t, e in self.events
            if e.get("Event") == "DialBegin"
            and e.get("DestChannel", "").startswith(f"PJSIP/agent{agent}-")
        ]

    def hangup(self, linkedid: str) -> float:
        return next(
            t for t, e in self.events
            if e.get("Event") == "Hangup" and e.get("Uniqueid") == linkedid
        )  # fmt: skip


async def watching(acd: Acd, scenario: Callable[[Watch], Awaitable[None]]) -> Watch:
    a = acd.h.config.ami
    client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
    watch = Watch()
    queue = client.subscribe()

    async def collect() -> None:
        while True:
            e = await queue.get()
            watch.events.append((time.monotonic(), e))

    task = asyncio.create_task(collect())
    try:
        await scenario(watch)
    finally:
        task.cancel()
        client.unsubscribe(queue)
        await client.close()
    return watch


async def until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


def place(acd: Acd, keys: str | list[tuple[float, str]], hold_s: float, caller: str = ""):  # type: ignore[no-untyped-def]
    spec = acd.h.spec(keys, caller=caller or None, hold_s=hold_s, key_after_s=KEY_AFTER_S)
    return asyncio.create_task(acd.h.place_async(spec))


def test_elderly_caller_is_answered_before_two_earlier_normal_calls(acd: Acd) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    calls: dict[str, dict] = {}

    async def scenario(watch: Watch) -> None:
        normal = [place(acd, "2", hold_s=45)]
        await until(lambda: acd.engine.waiting("gjj") >= 1, "first normal call queued")
        normal.append(place(acd, "2", hold_s=45))
        await until(lambda: acd.engine.waiting("gjj") >= 2, "second normal call queued")
        elderly = place(acd, [(KEY_AFTER_S, ELDERLY_KEY), (1.5, "2")], hold_s=8)
        await until(lambda: acd.engine.waiting("gjj") >= 3, "elderly call queued")
        acd.command("ready", GJJ)
        calls["elderly"] = await elderly
        calls["n1"], calls["n2"] = await asyncio.gather(*normal)

    watch = asyncio.run(watching(acd, scenario))
    waits = [e for t, e in watch.events if e.get("UserEvent") == "AcdWait"]
    by_call = {e["Uniqueid"]: e["QueuePriority"] for e in waits}
    assert by_call[calls["elderly"]["linkedid"]] == "2", (by_call, calls["elderly"])
    assert by_call[calls["n1"]["linkedid"]] == by_call[calls["n2"]["linkedid"]] == "0"
    order = [linkedid for _, linkedid in watch.dials(GJJ)]
    assert order[0] == calls["elderly"]["linkedid"], (order, calls)
    assert calls["n1"]["linkedid"] in order[1:2], order  # then the normal calls, first come


def test_agent_gets_no_invite_during_wrapup_and_one_right_after(acd: Acd) -> None:
    acd.set_agents(ready=(GJJ,), not_ready=(GENERAL, GENERAL2))
    calls: dict[str, dict] = {}

    async def scenario(watch: Watch) -> None:
        first = place(acd, "2", hold_s=18)  # still talking when the second caller queues
        await until(lambda: acd.state(GJJ)[0] == AgentState.ON_CALL, "first call answered")
        second = place(acd, "2", hold_s=30)
        calls["first"], calls["second"] = await asyncio.gather(first, second)

    watch = asyncio.run(watching(acd, scenario))
    dials = watch.dials(GJJ)
    assert [c for _, c in dials] == [calls["first"]["linkedid"], calls["second"]["linkedid"]]
    ended = watch.hangup(calls["first"]["linkedid"])
    queued = next(
        t for t, e in watch.events
        if e.get("UserEvent") == "AcdWait" and e.get("Uniqueid") == calls["second"]["linkedid"]
    )  # fmt: skip
    assert queued < ended  # the second caller waited for this agent only: the wrap-up decides
    gap = dials[1][0] - ended
    print(f"first call hung up → next INVITE to agent {GJJ}: {gap:.3f} s (wrapup_s {WRAPUP_S})")
    assert gap >= WRAPUP_S - 0.3, gap
    assert gap <= WRAPUP_S + 5, gap


def test_caller_who_hangs_up_and_calls_again_is_ahead_of_a_later_caller(acd: Acd) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    calls: dict[str, dict] = {}
    queue: list[bytes] = []

    async def scenario(watch: Watch) -> None:
        calls["a1"] = await place(acd, "2", hold_s=7, caller=A)  # waits, then hangs up
        b = place(acd, "2", hold_s=30, caller=B)
        await until(lambda: acd.engine.waiting("gjj") >= 1, "B queued")
        a2 = place(acd, "2", hold_s=30, caller=A)  # within reentry_s
        await until(lambda: acd.engine.waiting("gjj") >= 2, "A queued again")
        queue.extend(acd.redis.zrange("acd:q:gjj:0", 0, -1))
        acd.command("ready", GJJ)
        calls["a2"], calls["b"] = await asyncio.gather(a2, b)

    watch = asyncio.run(watching(acd, scenario))
    ids = {name: call["linkedid"] for name, call in calls.items()}
    assert [q.decode() for q in queue] == [ids["a2"], ids["b"]], (queue, ids)
    dials = watch.dials(GJJ)
    assert dials and dials[0][1] == ids["a2"], (dials, ids)
    entries = [f for _, f in acd.redis.xrange("acd:log") if f.get(b"call") == ids["a1"].encode()]
    assert [f[b"ev"] for f in entries] == [b"enqueue", b"abandon"]


def test_supervisor_boosts_the_later_of_two_waiting_calls_and_it_is_answered_first(
    acd: Acd,
) -> None:
    acd.set_agents(not_ready=(GJJ, GENERAL, GENERAL2))
    calls: dict[str, dict] = {}

    async def scenario(watch: Watch) -> None:
        first = place(acd, "2", hold_s=40)
        await until(lambda: acd.engine.waiting("gjj") >= 1, "first call queued")
        second = place(acd, "2", hold_s=12)
        await until(lambda: acd.engine.waiting("gjj") >= 2, "second call queued")
        later = acd.redis.zrange("acd:q:gjj:0", 1, 1)[0].decode()
        boost = PriorityCommand(later, 3, by="itest-supervisor")  # what the console sends
        acd.redis.xadd(STREAM, boost.fields())
        await until(lambda: acd.engine.position(later) == 1, "boosted call at the head")
        acd.command("ready", GJJ)
        calls["first"], calls["second"] = await asyncio.gather(first, second)

    watch = asyncio.run(watching(acd, scenario))
    dials = watch.dials(GJJ)
    assert dials and dials[0][1] == calls["second"]["linkedid"], (dials, calls)
    logged = [f for _, f in acd.redis.xrange("acd:log") if f[b"ev"] == b"priority"]
    assert logged[-1][b"call"].decode() == calls["second"]["linkedid"]
    assert logged[-1][b"by"] == b"itest-supervisor"
