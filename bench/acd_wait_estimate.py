"""Estimated wait against the real wait, with real calls through the ACD router.

    HOTLINE_ITEST_PORT_OFFSET=45000 nice -n 10 .venv/bin/python bench/acd_wait_estimate.py

One stack (hotline.yaml, ports moved to the acd test slot, ``acd.mode: router``, no greeting,
speech off; agent 1009 serves only 公积金 here, so 公积金 has two agents, 1002 and 1009, both
level 1, and nobody else logs in), sipp phones for every agent.  ``--calls`` sipp callers
press 2 (公积金) at random times (exponential gaps, mean ``--gap``) and hold on; the router
queues them and rings the agents.  An agent talks for a random time (uniform
``--talk-min``..``--talk-max`` s) after answering, then hangs up (AMI ``Hangup`` of the call's
channel, what the agent's phone would do); wrap-up 2 s.

The router records each queued caller's estimate at entry (the announcement's own estimate,
``acd.estimate.announced_wait``: place × handle ÷ agents logged in, handle = the skill's kept
talk + wrap-up, else ``acd.default_handle_s``, blended with place × the observed time per
place once the engine keeps one); the engine compares it with the real wait at the answer.
Printed from the engine's ``acd:log`` and its counters: per skill, answered calls with an
estimate, the mean real wait, the estimate's mean absolute error, and on the same calls the
staffing model alone (what was announced before the observed gap was kept) and the
app_queue-style peer's (a ``(3·old + new) / 4`` average of the waits answered before the
caller arrived).  The staffing model and a check of the router's figure are replayed from
the log: places from enqueue/offer/abandon/no-answer entries, handle times from answer →
end, the gap from the answers (the rules of ``acd.estimate``), two agents logged in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from acd_ready_to_invite import config_data, on_stack  # noqa: E402

from acd.commands import STREAM, AgentCommand  # noqa: E402
from acd.engine import RedisEngine  # noqa: E402
from acd.estimate import HANDLE_ALPHA, QueueAverage, WaitEstimator, announced_wait  # noqa: E402
from acd.policy import AgentState, Refused  # noqa: E402
from cli.commands.call import place_call  # noqa: E402
from hotline.ami import AmiClient  # noqa: E402
from hotline.config import HotlineConfig  # noqa: E402
from runtime.stack import Stack  # noqa: E402
from testphones.sipp import CallerSpec, key_steps, prepare_media  # noqa: E402

AGENTS = ("1002", "1009")
SKILL = "gjj"
WRAPUP_S = 2.0
HOLD_S = 600.0
"""Callers hold on longer than any wait here: only the agent ends a call."""


def bench_config(offset: int, tmp: Path, default_handle_s: float) -> dict:
    data = config_data(offset, tmp)
    for agent in data["agents"]:
        if agent["id"] == "1009":
            agent["seats"] = [SKILL]
    data["acd"] |= {"wrapup_s": WRAPUP_S, "announce_s": 0, "default_handle_s": default_handle_s}
    return data


class Run:
    def __init__(self, config: HotlineConfig, tmp: Path, args: argparse.Namespace) -> None:
        self.config, self.tmp, self.args = config, tmp, args
        self.redis = Redis(**config.redis.client_kwargs())  # type: ignore[arg-type]
        self.engine = RedisEngine(self.redis, config.acd_settings())
        self.rng = random.Random(args.seed)
        self.ended: set[str] = set()

    def state(self, agent: str) -> tuple[str, str]:
        try:
            st, _, call = self.engine.agent_state(agent)
        except Refused:
            return AgentState.LOGGED_OUT, ""
        return st, call

    async def caller(self, n: int) -> None:
        plan, media, media_s = prepare_media(key_steps("2", 2.0), self.tmp / "media" / str(n))
        spec = CallerSpec.into(self.config, caller=f"1390000{n:04d}", digits=plan,
                               hold_s=HOLD_S, media_pcap=media, media_s=media_s)  # fmt: skip
        work = Path(tempfile.mkdtemp(dir=self.tmp))
        await place_call(self.config, spec, work, HOLD_S + 60, settle_s=0.5)

    async def agents(self, ami: AmiClient, stop: asyncio.Event) -> None:
        """Each answered call ends after a random talk time (the agent hangs up)."""
        pending: dict[str, float] = {}
        while not stop.is_set():
            now = time.monotonic()
            for agent in AGENTS:
                st, call = self.state(agent)
                if st == AgentState.ON_CALL and call not in pending and call not in self.ended:
                    pending[call] = now + self.rng.uniform(self.args.talk_min, self.args.talk_max)
            for call, at in list(pending.items()):
                if at <= now:
                    del pending[call]
                    self.ended.add(call)
                    channel = self.redis.hget("acd:chan", call)
                    if channel:
                        await ami.action("Hangup", Channel=channel.decode())
            await asyncio.sleep(0.1)

    async def main(self) -> None:
        for agent in AGENTS:
            cmd = AgentCommand(op="login", agent_id=agent, by="bench")  # type: ignore[arg-type]
            self.redis.xadd(STREAM, cmd.fields())
        deadline = time.monotonic() + 20
        while any(self.state(a)[0] != AgentState.READY for a in AGENTS):
            if time.monotonic() > deadline:
                raise RuntimeError(f"agents not ready: {[self.state(a) for a in AGENTS]}")
            await asyncio.sleep(0.1)
        a = self.config.ami
        ami = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        stop = asyncio.Event()
        hangups = asyncio.create_task(self.agents(ami, stop))
        callers = []
        try:
            for n in range(1, self.args.calls + 1):
                callers.append(asyncio.create_task(self.caller(n)))
                await asyncio.sleep(self.rng.expovariate(1 / self.args.gap))
            await asyncio.gather(*callers)
        finally:
            stop.set()
            await hangups
            await ami.close()
        report(self.redis, self.engine, self.args.default_handle)


class Scored:
    """One answered caller who had an entry estimate, with the models' figures at entry."""

    def __init__(self, wait: float, est: float, staffing: float, replayed: float | None,
                 peer: float) -> None:  # fmt: skip
        self.wait, self.est, self.staffing = wait, est, staffing
        self.replayed, self.peer = replayed, peer


def replay(entries: list[dict[str, str]], default_handle_s: float) -> dict[str, list[Scored]]:
    """Per skill, the scored callers: the router's estimate (``est``), the staffing model
    alone, the router's rule replayed from the log, and the app_queue-style average, each as
    it stood when the caller was queued (``len(AGENTS)`` agents logged in throughout)."""
    kept, peer = WaitEstimator(default_handle_s, alpha=HANDLE_ALPHA), QueueAverage()
    waiting: dict[str, dict[str, float]] = {}
    calls: dict[str, dict[str, float | str]] = {}
    at_entry: dict[str, tuple[float, float | None, float]] = {}
    rows: dict[str, list[Scored]] = {}
    for e in entries:
        ev, call = e["ev"], e.get("call", "")
        t = float(e["t"])
        if ev == "enqueue":
            calls[call] = {"skill": e["skill"], "arr": t}
            queue = waiting.setdefault(e["skill"], {})
            queue[call] = t
            place = sorted(queue, key=queue.__getitem__).index(call) + 1
            handle = kept.handle(e["skill"]) or default_handle_s
            staffing = announced_wait(place, len(AGENTS), handle, None)
            rule = announced_wait(place, len(AGENTS), handle, kept.gap(e["skill"]))
            at_entry[call] = (staffing or 0.0, rule, peer.estimate(e["skill"]))
        elif call not in calls:
            continue
        skill = str(calls[call]["skill"])
        if ev == "offer":
            waiting[skill].pop(call, None)
            calls[call]["off"] = t
        elif ev == "no_answer":
            waiting[skill][call] = float(calls[call]["arr"])
        elif ev == "abandon":
            waiting[skill].pop(call, None)
        elif ev == "answer":
            wait = float(e["wait"])
            queued = float(calls[call].get("off", 0.0)) > float(calls[call]["arr"])
            kept.observe_answer(skill, t, wait, queued)
            calls[call] |= {"ans": t, "agent": e["agent"]}
            if "est" in e:
                staffing, rule, peer_s = at_entry[call]
                rows.setdefault(skill, []).append(
                    Scored(wait, float(e["est"]), staffing, rule, peer_s)
                )
            if wait > 0:
                peer.observe(skill, wait)
        elif ev == "end" and "ans" in calls[call]:
            done = t - float(calls[call]["ans"]) + WRAPUP_S
            kept.observe(str(calls[call]["agent"]), skill, done)
    return rows


def report(redis: Redis, engine: RedisEngine, default_handle_s: float) -> None:
    """Per skill: the router's entry estimates against the real waits (from ``acd:log``),
    beside the staffing model alone and the app_queue-style average on the same calls."""
    entries = [
        {k.decode(): v.decode() for k, v in raw.items()} for _, raw in redis.xrange("acd:log")
    ]
    rows = replay(entries, default_handle_s)
    print("## Estimated wait at entry vs real wait (real calls through the ACD router)")
    print("| skill | answered with an estimate | mean wait s | announced MAE s "
          "| staffing alone MAE s | app_queue-style MAE s | engine counters: n, MAE s "
          "| replay = router |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    counters = engine.estimate_errors()
    for skill, calls in rows.items():
        n = len(calls)
        mean_wait = sum(c.wait for c in calls) / n
        ours = sum(abs(c.est - c.wait) for c in calls) / n
        staffing = sum(abs(c.staffing - c.wait) for c in calls) / n
        theirs = sum(abs(c.peer - c.wait) for c in calls) / n
        same = all(c.replayed is not None and abs(c.replayed - c.est) < 1e-6 for c in calls)
        cn, cmae = counters.get(skill, (0, float("nan")))
        print(f"| {skill} | {n} | {mean_wait:.1f} | {ours:.1f} | {staffing:.1f} | {theirs:.1f} "
              f"| {cn}, {cmae:.1f} | {'yes' if same else 'NO'} |")  # fmt: skip
    handle, per_agent = engine.handle_times(SKILL)
    kept = ", ".join(f"{a} {h:.1f}" for a, h in sorted(per_agent.items()))
    gap, n_gaps = engine.time_per_place(SKILL)
    print(f"kept handle time {SKILL}: {handle if handle is None else round(handle, 1)} s "
          f"(agents: {kept}); time per place {gap if gap is None else round(gap, 1)} s "
          f"({n_gaps} gaps)")  # fmt: skip
    for skill, calls in rows.items():
        for c in calls:
            print(f"  {skill}: waited {c.wait:6.1f} s, announced {c.est:6.1f} s, staffing "
                  f"{c.staffing:6.1f} s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--gap", type=float, default=6.0, help="mean s between callers")
    parser.add_argument("--talk-min", type=float, default=8.0)
    parser.add_argument("--talk-max", type=float, default=24.0)
    parser.add_argument("--default-handle", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--offset",
        type=int,
        default=int(os.environ.get("HOTLINE_ITEST_PORT_OFFSET", "10000")) + 2250,
        help="port offset (default: the integration tests' acd slot; not at the same time)",
    )
    parser.add_argument("--instance", default="bench-acdwait")
    args = parser.parse_args()
    if not (0 < args.calls <= 200 and 0 < args.talk_min <= args.talk_max <= 600):
        parser.error("--calls in 1..200, 0 < --talk-min <= --talk-max <= 600")
    tmp = Path(tempfile.mkdtemp(prefix="acd-wait-"))
    print(f"{args.calls} callers, mean gap {args.gap} s, talk {args.talk_min}–{args.talk_max} "
          f"s, wrap-up 2 s, default handle {args.default_handle} s, agents "
          f"{', '.join(AGENTS)}")  # fmt: skip

    def run(config: HotlineConfig, stack: Stack, phones: object) -> None:
        t0 = time.monotonic()
        asyncio.run(Run(config, tmp, args).main())
        print(f"calls placed and answered in {time.monotonic() - t0:.0f} s")

    on_stack(bench_config(args.offset, tmp, args.default_handle), tmp, args.instance, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
