"""Real calls through two ACD routers at once (issue 9): ``acd.routers: 2`` on one Redis and
one Asterisk; one leads by the lease, the other stands by (docs/acd.md, "Two routers").

Many sipp callers press 2 (公积金) at once; every agent holds the 公积金 seat and its phone
answers at once and hangs up after a short talk, so the agents take call after call.  Half
way through the leader router is killed (SIGKILL): the standby takes the lease and the
remaining callers are still answered.  Counted on the AMI side: every caller is rung and
answered exactly once, no agent phone ever carries two calls, nobody falls back to app_queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_acd_calls import KEY_AFTER_S, Acd, running_acd

from acd.lease import holder
from hotline.ami import AmiClient
from testphones.sipp import UAS_XML, run_caller_async, start_phone, stop_phone

pytestmark = pytest.mark.integration

CALLS = int(os.environ.get("HOTLINE_ACD_PAIR_CALLS", "200"))
"""Callers in the run (the issue's 200; an env knob to measure what a machine can carry)."""
RATE = 6.0
"""New callers per second: just under what nine agents with a one-second talk answer."""
TALK_MS = 800
"""How long an agent's phone talks before it hangs up."""


def quick_agent_scenario(workdir: Path) -> Path:
    """``uas.xml`` for an agent who answers, talks ``TALK_MS`` and hangs up (BYE in the
    dialog the INVITE opened: its From/To swapped, our tag, Asterisk's Contact)."""
    text = UAS_XML.read_text(encoding="utf-8")
    keep = (
        '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="rfrom" />'
        '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="rto" />'
        '<ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:" assign_to="rcontact" />'
    )
    anchor = 'assign_to="cseq_all,invite_cseq" />'
    if anchor not in text or "<!-- talking:" not in text:
        raise AssertionError("uas.xml changed: the quick agent cannot be made from it")
    text = text.replace(anchor, anchor + keep, 1)
    hang_up = f"""<pause milliseconds="{TALK_MS}" />
  <send retrans="500">
    <![CDATA[
      BYE [$rcontact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$rto];tag=[pid]phone[call_number]
      To: [$rfrom]
      Call-ID: [call_id]
      CSeq: [cseq] BYE
      Max-Forwards: 70
      Contact: <sip:[$role]@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" next="end" />
  <!-- talking:"""
    text = text.replace("<!-- talking:", hang_up, 1)
    out = workdir / "uas_quick.xml"
    workdir.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def every_agent_takes_gjj(data: dict) -> None:
    for agent in data["agents"]:
        if "gjj" not in agent["seats"]:
            agent["seats"] = [*agent["seats"], "gjj"]
    data["acd"].update(
        routers=2, lease_s=1.5, heartbeat_s=0.5, stale_s=3, ack_s=5, wrapup_s=0,
        ring_timeout_s=4, announce_s=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acd]:
    with running_acd(tmp_path_factory, kind="acdpair", tweak=every_agent_takes_gjj) as acd:
        h = acd.h
        scenario = quick_agent_scenario(h.workdir / "quick")
        for agent in h.config.agents:
            stop_phone(h.phones.phones[agent.endpoint])
            h.phones.phones[agent.endpoint] = start_phone(
                agent.endpoint, agent.host, agent.port, h.workdir / "phones-quick",
                scenario=scenario,
            )  # fmt: skip
        yield acd


class Watch:
    """Dial, bridge and hang-up events on the AMI side, and per agent phone the legs alive now.

    An agent's leg ends for his phone at its ``BridgeLeave`` (he hung up: his BYE) or its
    ``Hangup``, whichever comes first: Asterisk hangs an answered leg up on another thread
    than the caller's, so its ``Hangup`` may be published after the router, told by the
    caller's ``Hangup``, has already rung the same phone with the next call."""

    def __init__(self) -> None:
        self.dials: dict[str, list[str]] = {}  # caller uniqueid → agents rung
        self.answers: dict[str, list[str]] = {}  # caller uniqueid → agents who answered
        self.legs: dict[str, tuple[str, str, float]] = {}  # agent leg → (agent, caller, since)
        self.most_at_once: dict[str, int] = {}
        self.overlaps: list[str] = []  # what each phone carried when it carried two calls
        self.fallbacks: list[str] = []
        self.started = time.monotonic()

    def see(self, e: dict[str, str]) -> None:
        kind, dest = e.get("Event"), e.get("DestChannel", "")
        now = round(time.monotonic() - self.started, 3)
        if kind == "DialBegin" and dest.startswith("PJSIP/agent"):
            agent = dest.rpartition("-")[0].removeprefix("PJSIP/")
            self.dials.setdefault(e["Uniqueid"], []).append(agent)
            self.legs[e["DestUniqueid"]] = (agent, e["Uniqueid"], now)
            alive = [(c, t) for a, c, t in self.legs.values() if a == agent]
            self.most_at_once[agent] = max(self.most_at_once.get(agent, 0), len(alive))
            if len(alive) > 1:
                self.overlaps.append(f"{agent} at {now} s rung for callers {alive}")
        elif kind == "DialEnd" and dest.startswith("PJSIP/agent"):
            if e.get("DialStatus") == "ANSWER":
                agent = dest.rpartition("-")[0].removeprefix("PJSIP/")
                self.answers.setdefault(e["Uniqueid"], []).append(agent)
        elif kind in ("Hangup", "BridgeLeave"):
            self.legs.pop(e.get("Uniqueid", ""), None)
        elif kind == "UserEvent" and e.get("UserEvent") == "AcdFallback":
            self.fallbacks.append(e.get("Uniqueid", ""))


def test_two_routers_answer_each_of_many_simultaneous_calls_once_and_survive_the_leaders_death(
    pair: Acd,
) -> None:
    h = pair.h
    routers = h.stack.status()["acd"]["routers"]  # type: ignore[attr-defined]
    assert set(routers) == {"router-1", "router-2"} and all(routers.values()), routers
    agents = [a.id for a in h.config.agents]
    pair.set_agents(ready=tuple(agents))
    before = {a: pair.counter("agent", a, "answered") for a in agents}
    last = pair.redis.xrevrange("acd:log", count=1)
    since = last[0][0] if last else b"0"
    spec = replace(
        h.spec("2", hold_s=150, key_after_s=KEY_AFTER_S),
        calls=CALLS, rate=RATE, limit=CALLS, trace_errors=False,
        callers=tuple(f"139{i:08d}" for i in range(CALLS)),
    )  # fmt: skip
    watch = Watch()
    killed: dict[str, object] = {}

    async def scenario() -> object:
        a = h.config.ami
        client = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        queue = client.subscribe()

        async def follow() -> None:
            while True:
                watch.see(await queue.get())

        follower = asyncio.create_task(follow())
        started = watch.started = time.monotonic()
        run = asyncio.create_task(run_caller_async(spec, h.workdir / "pair-calls", 240.0))
        try:
            while not run.done() and len(watch.answers) < CALLS // 2:
                await asyncio.sleep(0.05)
            lead = holder(pair.redis)
            assert lead is not None, "no router leads"
            index = int(lead[1].removeprefix("router-"))
            pid = h.stack.acd_router_pid(index)  # type: ignore[attr-defined]
            assert pid, f"{lead[1]} does not run"
            os.kill(pid, signal.SIGKILL)
            killed.update(router=lead[1], at_answered=len(watch.answers),
                          at_s=round(time.monotonic() - started, 1))  # fmt: skip
            deadline = time.monotonic() + 15
            while (now := holder(pair.redis)) is None or now[1] == lead[1]:
                assert time.monotonic() < deadline, "the standby did not take the lease"
                await asyncio.sleep(0.05)
            killed.update(taken_by=now[1], takeover_s=round(time.monotonic() - started
                                                            - float(killed["at_s"]), 1))  # type: ignore[arg-type]  # fmt: skip
            result = await run
            await asyncio.sleep(2.0)  # the last hang-ups reach the watcher
            killed["run_s"] = round(time.monotonic() - started, 1)
            return result
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            client.unsubscribe(queue)
            await client.close()

    result = asyncio.run(scenario())
    print(f"two routers: {CALLS} calls at {RATE}/s, {killed}")
    facts = result.as_dict()  # type: ignore[attr-defined]
    assert facts["calls_created"] == CALLS and facts["failed"] == 0, facts
    assert watch.fallbacks == [], f"{len(watch.fallbacks)} callers fell back to app_queue"
    assert len(watch.answers) == CALLS, (len(watch.answers), killed)  # every caller answered
    twice = {u: a for u, a in watch.answers.items() if len(a) != 1}
    assert twice == {}, (twice, killed)  # … exactly once
    rung = {u: a for u, a in watch.dials.items() if len(a) != 1}
    assert rung == {}, (rung, killed)  # rung once
    assert max(watch.most_at_once.values()) == 1, (watch.overlaps, killed)  # one call per phone
    # the engine: quiet again, and every call counted once (a call answered and ended
    # while no router led is counted as a released reservation, not as answered)
    deadline = time.monotonic() + 15
    while pair.redis.hlen("acd:chan") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pair.redis.hlen("acd:chan") == 0
    answered = sum(pair.counter("agent", a, "answered") - before[a] for a in agents)
    log = [f for _, f in pair.redis.xrange("acd:log", min=since)]
    released = sum(1 for f in log if f[b"ev"] == b"abandon" and b"agent" in f)
    waiting_abandons = sum(1 for f in log if f[b"ev"] == b"abandon" and b"agent" not in f)
    print(f"engine: {answered} answered, {released} reservations released by the takeover")
    assert waiting_abandons == 0
    assert answered + released == CALLS
    assert released <= 9  # only what the nine agents were doing while nobody led
