"""A long run of two ACD routers with the production policy (:class:`acd.policy.Policy`):
agents drop out mid-shift (break, log-out) and the leading router is killed mid-run.

What is modelled, as the real routers do it (acd/router.py, acd/lease.py):

- the engine's state survives the kill (it lives in Redis);
- only the leader applies AMI events and agents' commands and runs the timers; each offer
  it decides is carried out ``act_s`` later (the AMI Redirect);
- the killed leader's offers not yet carried out are lost; events while nobody leads are
  kept by the standby, commands stay in the stream, timers wait;
- ``takeover_s`` after the kill the standby leads: it replays the dial ends and hang-ups it
  kept, applies the waiting commands, reconciles against the channels (a reserved call still
  in the waiting room is offered again, a waiting caller the engine does not know is queued,
  a gone call is released) and runs the timers.

The channels (caller waiting / ringing agent X / talking to X / gone) and the agents' phones
are the simulation's truth.  It counts double offers (a call rung while it rings or talks, a
phone rung while busy), lost callers (neither answered nor abandoned by their own choice at
the end) and compares the engine's per-agent and per-skill counters (from its log, as the Lua
script keeps them) with the call records the simulation writes.

    python -m acd.simulate_pair --duration 28800 --seed 1
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from acd.policy import Offer, Policy, Reason, Refused
from acd.simulate import Dist, Scenario, hotline

RING_GRACE_S = 3.0
"""The engine's ring timer runs this much longer than the dial (as acd/router.py)."""


BREAK = Dist("exp", 600.0)
"""How long an agent stays away (not ready or logged out)."""


@dataclass(frozen=True)
class PairScenario:
    base: Scenario
    kill_at_s: float
    """The leader dies at its first decision from this time on, before carrying it out."""
    takeover_s: float = 4.0
    """Lease (3 s) plus a heartbeat (1 s): the standby leads this long after the kill."""
    act_s: float = 0.05
    ring_s: float = 1.0
    dial_timeout_s: float = 15.0
    p_no_answer: float = 0.02
    dropouts_per_agent_h: float = 1.0
    dropout: Dist = BREAK
    p_logout: float = 0.3
    back_after_no_answer_s: float = 20.0
    retry_s: float = 30.0
    reconcile: bool = True
    """False: the standby just starts leading, without replay or reconciliation (to see
    what they are for)."""


@dataclass
class Record:
    skill: str
    answered_by: str = ""
    abandoned: bool = False
    offered: list[str] = field(default_factory=list)
    """Agents a router carried an offer of this call to (a Redirect sent)."""
    rung: list[str] = field(default_factory=list)


@dataclass
class PairReport:
    calls: int
    answered: int
    abandoned: int
    double_offers: int
    lost_callers: int
    lost_offers: int
    reoffered_after_takeover: int
    requeued_after_takeover: int
    replayed: int
    dropouts: int
    mismatches: list[str]
    killed: str
    leader_at_end: str

    def rows(self) -> list[tuple[str, object]]:
        return [
            ("calls", self.calls),
            ("answered", self.answered),
            ("abandoned (caller hung up)", self.abandoned),
            ("agent drop-outs (break / log-out)", self.dropouts),
            ("router killed", self.killed),
            ("leader at the end", self.leader_at_end),
            ("offers lost with the killed router", self.lost_offers),
            ("offered again by the takeover", self.reoffered_after_takeover),
            ("callers queued by the takeover", self.requeued_after_takeover),
            ("events replayed by the takeover", self.replayed),
            ("double offers", self.double_offers),
            ("lost callers", self.lost_callers),
            ("counter ≠ call records", len(self.mismatches)),
        ]


class _Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True
        self.pending: set[tuple[str, str]] = set()
        self.missed: list[tuple[str, tuple[str, ...]]] = []


def simulate_pair(sc: PairScenario) -> PairReport:
    """Run ``sc``; arrivals stop at ``base.duration_s``, then the queues drain."""
    base = sc.base
    rng = random.Random(base.seed)
    settings = base.settings.model_copy(update={"ring_timeout_s": sc.dial_timeout_s + RING_GRACE_S})
    engine = Policy(settings)
    routers = [_Router("router-1"), _Router("router-2")]
    leader: _Router | None = routers[0]
    events: list[tuple[float, int, str, tuple[str, ...]]] = []
    seq = 0
    chan: dict[str, tuple[str, str]] = {}  # call → (waiting|ringing|talking, agent)
    phone: dict[str, str] = {}  # agent → call on its phone
    records: dict[str, Record] = {}
    handle: dict[str, float] = {}
    commands: list[tuple[str, str]] = []  # (op, agent) in the stream, not applied yet
    counts = Counter[str]()
    known: set[str] = set()
    armed = False

    def push(t: float, kind: str, *args: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, args))

    def decide(offers: list[Offer], now: float) -> None:
        """The leader got offers from the engine: each is carried out after ``act_s``."""
        nonlocal armed
        assert leader is not None
        for offer in offers:
            leader.pending.add((offer.call_id, offer.agent_id))
            push(now + sc.act_s, "carry", leader.name, offer.call_id, offer.agent_id)
        if armed and offers:  # the leader dies between deciding and carrying out
            armed = False
            push(now, "kill")

    def carry(router: _Router, call_id: str, agent: str, now: float) -> None:
        if not router.alive or (call_id, agent) not in router.pending:
            return  # died with its router (counted at the kill)
        router.pending.discard((call_id, agent))
        records[call_id].offered.append(agent)  # the Redirect is sent
        where = chan.get(call_id)
        if where is None:  # the Redirect fails: the router releases the call
            decide(engine.hangup(call_id, now), now)
            return
        if where[0] != "waiting" or agent in phone:
            counts["double_offers"] += 1
            return
        chan[call_id] = ("ringing", agent)
        phone[agent] = call_id
        records[call_id].rung.append(agent)
        if rng.random() < sc.p_no_answer:
            push(now + sc.dial_timeout_s, "no_answer", call_id, agent)
        else:
            push(now + sc.ring_s, "answer", call_id, agent)

    def ami(kind: str, *args: str, now: float) -> None:
        """An AMI event: the leader applies it, a standby keeps it while nobody leads."""
        if leader is None:
            standby = next(r for r in routers if r.alive)
            standby.missed.append((kind, args))
            return
        apply_event(kind, args, now)

    def apply_event(kind: str, args: tuple[str, ...], now: float) -> None:
        if kind == "wait":
            (call_id,) = args
            if engine.call_state(call_id) is None and call_id in chan:
                known.add(call_id)
                decide(engine.enqueue(call_id, records[call_id].skill, 0, now), now)
            return
        if kind == "hangup":
            (call_id,) = args
            decide(engine.hangup(call_id, now), now)
            return
        call_id, agent = args
        state = engine.call_state(call_id)
        if state != ("reserved", agent):
            return  # the old leader had applied it, or the ring timer was first
        if kind == "answer":
            engine.accept(agent, call_id, now)
        else:
            decide(engine.no_answer(agent, call_id, now), now)

    def apply_command(op: str, agent: str, now: float) -> None:
        try:
            if op == "break":
                engine.not_ready(agent, Reason.BREAK, now)
                counts["dropouts"] += 1
                push(now + sc.dropout.sample(rng), "command", "ready", agent)
            elif op == "logout":
                decide(engine.logout(agent, now), now)
                counts["dropouts"] += 1
                push(now + sc.dropout.sample(rng), "command", "login", agent)
            elif op == "login":
                decide(engine.login(agent, base.agents[agent], now), now)
            else:
                decide(engine.ready(agent, now), now)
        except Refused:  # the console said 409: the agent tries again later
            push(now + sc.retry_s, "command", op, agent)

    def take_over(router: _Router, now: float) -> None:
        nonlocal leader
        leader = router
        if not sc.reconcile:
            router.missed.clear()
            return
        for kind, args in router.missed:
            if kind != "wait":  # waiting callers are found by the reconciliation
                counts["replayed"] += 1
                apply_event(kind, args, now)
        router.missed.clear()
        while commands:
            apply_command(*commands.pop(0), now)
        for call_id in sorted(known):
            state = engine.call_state(call_id)
            if state is None:
                continue
            where = chan.get(call_id)
            if where is None:
                decide(engine.hangup(call_id, now), now)
            elif state[0] == "reserved" and where[0] == "waiting":
                counts["reoffered"] += 1
                decide([Offer(call_id, state[1], now)], now)
        for call_id, where in sorted(chan.items()):
            if where[0] == "waiting" and engine.call_state(call_id) is None:
                counts["requeued"] += 1
                apply_event("wait", (call_id,), now)
        decide(engine.tick(now), now)

    for agent, profile in base.agents.items():
        engine.login(agent, profile, 0.0)
        if sc.dropouts_per_agent_h > 0:
            push(rng.expovariate(sc.dropouts_per_agent_h / 3600), "dropout", agent)
    for skill, load in base.loads.items():
        push(rng.expovariate(load.rate_per_s), "arrive", skill)
    push(sc.kill_at_s, "arm")

    n = 0
    killed = "-"
    while True:
        due = engine.next_due()
        nxt = events[0][0] if events else None
        if leader is not None and due is not None and (nxt is None or due <= nxt):
            decide(engine.tick(due), due)
            continue
        if not events:
            break
        now, _, kind, args = heapq.heappop(events)
        if kind == "arrive":
            (skill,) = args
            if now > base.duration_s:
                continue
            load = base.loads[skill]
            push(now + rng.expovariate(load.rate_per_s), "arrive", skill)
            n += 1
            call_id = f"c{n:07d}"
            records[call_id] = Record(skill)
            handle[call_id] = load.handle.sample(rng)
            chan[call_id] = ("waiting", "")
            if load.patience is not None:
                push(now + load.patience.sample(rng), "patience", call_id)
            ami("wait", call_id, now=now)
        elif kind == "carry":
            name, call_id, agent = args
            carry(next(r for r in routers if r.name == name), call_id, agent, now)
        elif kind == "answer":
            call_id, agent = args
            if chan.get(call_id) != ("ringing", agent):
                continue  # the caller hung up while it rang
            chan[call_id] = ("talking", agent)
            records[call_id].answered_by = agent
            push(now + handle[call_id], "end", call_id)
            ami("answer", call_id, agent, now=now)
        elif kind == "no_answer":
            call_id, agent = args
            if chan.get(call_id) != ("ringing", agent):
                continue
            chan[call_id] = ("waiting", "")
            phone.pop(agent, None)
            push(now + sc.back_after_no_answer_s, "command", "ready", agent)
            ami("no_answer", call_id, agent, now=now)
        elif kind in ("end", "patience"):
            (call_id,) = args
            where = chan.get(call_id)
            if where is None or (kind == "patience" and where[0] == "talking"):
                continue
            if kind == "patience":
                records[call_id].abandoned = True
            del chan[call_id]
            if where[1]:
                phone.pop(where[1], None)
            ami("hangup", call_id, now=now)
        elif kind == "dropout":
            (agent,) = args
            op = "logout" if rng.random() < sc.p_logout else "break"
            if now < base.duration_s:
                push(now + rng.expovariate(sc.dropouts_per_agent_h / 3600), "dropout", agent)
                push(now, "command", op, agent)
        elif kind == "command":
            op, agent = args
            if leader is None:
                commands.append((op, agent))
            else:
                apply_command(op, agent, now)
        elif kind == "arm":
            armed = True
        elif kind == "kill":
            assert leader is not None
            leader.alive = False
            killed = leader.name
            counts["lost_offers"] += len(leader.pending)
            leader.pending.clear()
            leader = None
            push(now + sc.takeover_s, "takeover")
        elif kind == "takeover":
            take_over(next(r for r in routers if r.alive), now)

    return _report(engine, records, chan, counts, killed, leader)


def _report(
    engine: Policy,
    records: dict[str, Record],
    chan: dict[str, tuple[str, str]],
    counts: Counter[str],
    killed: str,
    leader: object,
) -> PairReport:
    skill_of = {r: rec.skill for r, rec in records.items()}
    engine_counts: Counter[tuple[str, str, str]] = Counter()
    for e in engine.log:
        ev, call, agent = e["ev"], str(e.get("call", "")), str(e.get("agent", ""))
        if ev == "enqueue":
            engine_counts["skill", skill_of[call], "entered"] += 1
        elif ev == "offer":
            engine_counts["agent", agent, "offered"] += 1
            engine_counts["skill", skill_of[call], "offered"] += 1
        elif ev == "answer":
            engine_counts["agent", agent, "answered"] += 1
            engine_counts["skill", skill_of[call], "answered"] += 1
        elif ev == "abandon":
            engine_counts["skill", skill_of[call], "abandoned"] += 1
    record_counts: Counter[tuple[str, str, str]] = Counter()
    for rec in records.values():
        record_counts["skill", rec.skill, "entered"] += 1
        for agent in rec.offered:
            record_counts["agent", agent, "offered"] += 1
            record_counts["skill", rec.skill, "offered"] += 1
        if rec.answered_by:
            record_counts["agent", rec.answered_by, "answered"] += 1
            record_counts["skill", rec.skill, "answered"] += 1
        if rec.abandoned:
            record_counts["skill", rec.skill, "abandoned"] += 1
    mismatches = [
        f"{k}: engine {engine_counts[k]}, records {record_counts[k]}"
        for k in sorted(set(engine_counts) | set(record_counts))
        if engine_counts[k] != record_counts[k]
    ]
    lost = sum(1 for r in records.values() if not r.answered_by and not r.abandoned)
    return PairReport(
        calls=len(records),
        answered=sum(1 for r in records.values() if r.answered_by),
        abandoned=sum(1 for r in records.values() if r.abandoned),
        double_offers=counts["double_offers"],
        lost_callers=lost + len(chan),
        lost_offers=counts["lost_offers"],
        reoffered_after_takeover=counts["reoffered"],
        requeued_after_takeover=counts["requeued"],
        replayed=counts["replayed"],
        dropouts=counts["dropouts"],
        mismatches=mismatches,
        killed=killed,
        leader_at_end=getattr(leader, "name", "-"),
    )


def pair_scenario(duration_s: float, seed: int, kill_at_s: float | None = None) -> PairScenario:
    """The example hotline (acd.simulate.hotline) for ``duration_s`` with the leader killed
    at ``kill_at_s`` (default: half way)."""
    base = hotline(duration_s=duration_s, seed=seed)
    return PairScenario(base, kill_at_s=duration_s / 2 if kill_at_s is None else kill_at_s)


def format_pair(report: PairReport) -> str:
    lines = ["| two routers | |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in report.rows()]
    return "\n".join([*lines, *report.mismatches[:10]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acd.simulate_pair", description=__doc__)
    parser.add_argument("--duration", type=float, default=28_800.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-at", type=float, default=None, help="default: half way")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 1e7:
        parser.error("--duration must be in (0, 1e7]")
    report = simulate_pair(pair_scenario(args.duration, args.seed, args.kill_at))
    print(format_pair(report))
    bad = report.double_offers or report.lost_callers or report.mismatches
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
