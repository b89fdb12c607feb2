"""Discrete-event simulation of the ACD with the production policy (no Redis needed).

Poisson arrivals per skill, handle-time and patience distributions; agents answer offers at
once.  The router is :class:`acd.policy.Policy` unless another object with the same methods
(the Redis engine) is given.  Reports per skill: service level (answered within ``sl_s`` among
offered calls), average speed of answer, abandonment, the wait estimate's error; occupancy
per agent group.

    python -m acd.simulate erlang-c
    python -m acd.simulate wallace-whitt --duration 200000
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from dataclasses import dataclass, field
from typing import Literal, Protocol

from acd.erlang import erlang_a, erlang_c_asa, erlang_c_service_level
from acd.estimate import QueueAverage, WaitEstimator
from acd.policy import Offer, Policy
from acd.settings import AcdSettings, AgentProfile, SkillPolicy, Step


@dataclass(frozen=True, slots=True)
class Dist:
    """A positive random duration: exponential, constant or log-normal (mean and CV)."""

    kind: Literal["exp", "const", "lognormal"]
    mean: float
    cv: float = 1.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "exp":
            return rng.expovariate(1 / self.mean)
        if self.kind == "const":
            return self.mean
        sigma2 = math.log(1 + self.cv**2)
        return rng.lognormvariate(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2))


@dataclass(frozen=True, slots=True)
class Load:
    rate_per_s: float
    handle: Dist
    patience: Dist | None = None
    priority_share: float = 0.0
    """Share of calls with priority 1 (e.g. the elderly option)."""


@dataclass(frozen=True)
class Scenario:
    settings: AcdSettings
    agents: dict[str, AgentProfile]
    groups: dict[str, str]
    """Agent id → group name for occupancy."""
    loads: dict[str, Load]
    duration_s: float
    warmup_s: float = 0.0
    seed: int = 1
    sl_s: float = 20.0


@dataclass
class SkillReport:
    offered: int = 0
    answered: int = 0
    within_sl: int = 0
    abandoned: int = 0
    wait_answered_s: float = 0.0
    est_error_s: list[float] = field(default_factory=list)
    staffing_error_s: list[float] = field(default_factory=list)
    peer_error_s: list[float] = field(default_factory=list)

    @property
    def service_level(self) -> float:
        return self.within_sl / self.offered if self.offered else math.nan

    @property
    def asa_s(self) -> float:
        return self.wait_answered_s / self.answered if self.answered else math.nan

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan

    @property
    def est_mae_s(self) -> float:
        return _mean(self.est_error_s)

    @property
    def staffing_mae_s(self) -> float:
        return _mean(self.staffing_error_s)

    @property
    def peer_mae_s(self) -> float:
        return _mean(self.peer_error_s)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass
class Report:
    skills: dict[str, SkillReport]
    occupancy: dict[str, float]
    decisions: int

    def total(self) -> SkillReport:
        out = SkillReport()
        for r in self.skills.values():
            out.offered += r.offered
            out.answered += r.answered
            out.within_sl += r.within_sl
            out.abandoned += r.abandoned
            out.wait_answered_s += r.wait_answered_s
            out.est_error_s += r.est_error_s
            out.staffing_error_s += r.staffing_error_s
            out.peer_error_s += r.peer_error_s
        return out


class Router(Protocol):
    def login(self, agent_id: str, profile: AgentProfile, now: float) -> list[Offer]: ...
    def enqueue(self, call_id: str, skill: str, priority: int, now: float) -> list[Offer]: ...
    def accept(self, agent_id: str, call_id: str, now: float) -> None: ...
    def hangup(self, call_id: str, now: float) -> list[Offer]: ...
    def tick(self, now: float) -> list[Offer]: ...
    def next_due(self) -> float | None: ...
    def position(self, call_id: str) -> int: ...
    def call_state(self, call_id: str) -> tuple[str, str] | None: ...


@dataclass(slots=True)
class _Call:
    skill: str
    arrival: float
    handle: float
    counted: bool
    estimate: float | None = None
    staffing: float = 0.0
    peer: float = 0.0


def simulate(scenario: Scenario, router: Router | None = None) -> Report:
    """Run ``scenario``; arrivals stop at ``duration_s``, then the queues drain."""
    rng = random.Random(scenario.seed)
    if router is None:
        router = Policy(scenario.settings, keep_log=False)
    skills = list(scenario.loads)
    reports = {s: SkillReport() for s in skills}
    busy: dict[str, float] = {}
    calls: dict[str, _Call] = {}
    events: list[tuple[float, int, str, str]] = []
    seq = 0
    decisions = 0
    estimator, peer = WaitEstimator(), QueueAverage()
    serving: dict[str, list[tuple[str, int]]] = {s: [] for s in skills}
    for agent_id, profile in scenario.agents.items():
        tiers = profile.tiers(scenario.settings)
        for skill, _ in tiers:
            if skill in serving:
                serving[skill].append((agent_id, len(tiers)))

    def push(t: float, kind: str, ref: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, ref))

    def handle_offers(offers: list[Offer], now: float) -> None:
        for offer in offers:
            call = calls[offer.call_id]
            router.accept(offer.agent_id, offer.call_id, now)
            wait = now - call.arrival
            done = call.handle + scenario.settings.wrapup_s
            estimator.observe(offer.agent_id, call.skill, done)
            estimator.observe_answer(call.skill, now, wait)
            if wait > 0:
                peer.observe(call.skill, wait)
            if call.counted:
                rep = reports[call.skill]
                rep.answered += 1
                rep.within_sl += wait <= scenario.sl_s
                rep.wait_answered_s += wait
                if call.estimate is not None:
                    rep.est_error_s.append(abs(call.estimate - wait))
                    rep.staffing_error_s.append(abs(call.staffing - wait))
                    rep.peer_error_s.append(abs(call.peer - wait))
                group = scenario.groups[offer.agent_id]
                busy[group] = busy.get(group, 0.0) + done
            call.estimate = None
            push(now + call.handle, "end", offer.call_id)

    for agent_id, profile in scenario.agents.items():
        handle_offers(router.login(agent_id, profile, 0.0), 0.0)
    for skill in skills:
        push(rng.expovariate(scenario.loads[skill].rate_per_s), "arrive", skill)

    n_calls = 0
    while True:
        due = router.next_due()
        next_event = events[0][0] if events else math.inf
        if due is not None and due <= next_event:
            decisions += 1
            handle_offers(router.tick(due), due)
            continue
        if not events:
            break
        now, _, kind, ref = heapq.heappop(events)
        decisions += 1
        if kind == "arrive":
            if now > scenario.duration_s:
                continue
            load = scenario.loads[ref]
            push(now + rng.expovariate(load.rate_per_s), "arrive", ref)
            n_calls += 1
            call_id = f"c{n_calls:08d}"
            counted = now >= scenario.warmup_s
            call = calls[call_id] = _Call(ref, now, load.handle.sample(rng), counted)
            if counted:
                reports[ref].offered += 1
            priority = 1 if rng.random() < load.priority_share else 0
            if load.patience is not None:
                push(now + load.patience.sample(rng), "abandon", call_id)
            offers = router.enqueue(call_id, ref, priority, now)
            if not offers:
                cap = estimator.capacity(ref, serving[ref])
                position = router.position(call_id)
                call.estimate = estimator.estimate(ref, position, cap)
                call.staffing = estimator.staffing_estimate(ref, position, cap)
                call.peer = peer.estimate(ref)
            handle_offers(offers, now)
        elif kind == "abandon":
            state = router.call_state(ref)
            if state is not None and state[0] == "waiting":
                call = calls.pop(ref)
                if call.counted:
                    reports[call.skill].abandoned += 1
                handle_offers(router.hangup(ref, now), now)
        else:
            calls.pop(ref, None)
            handle_offers(router.hangup(ref, now), now)
    span = max(scenario.duration_s - scenario.warmup_s, 1e-9)
    sizes: dict[str, int] = {}
    for group in scenario.groups.values():
        sizes[group] = sizes.get(group, 0) + 1
    occupancy = {g: busy.get(g, 0.0) / (n * span) for g, n in sizes.items()}
    return Report(reports, occupancy, decisions)


# -- scenarios --------------------------------------------------------------------------------


def single_skill(
    erlangs: float,
    handle_s: float,
    agents: int,
    *,
    patience_s: float | None = None,
    duration_s: float = 1_000_000,
    seed: int = 1,
) -> Scenario:
    """One skill, identical agents, exponential handle (and patience): Erlang C / Erlang A."""
    settings = AcdSettings(
        skills={"gjj": SkillPolicy(steps=(Step(level=1, after_s=0),))},
        fallback_skill="gjj",
        wrapup_s=0,
        priority_boost=0,
    )
    return Scenario(
        settings=settings,
        agents={f"{1000 + i}": AgentProfile(skills={"gjj": 1}) for i in range(agents)},
        groups={f"{1000 + i}": "gjj" for i in range(agents)},
        loads={
            "gjj": Load(
                rate_per_s=erlangs / handle_s,
                handle=Dist("exp", handle_s),
                patience=None if patience_s is None else Dist("exp", patience_s),
            )
        },
        duration_s=duration_s,
        warmup_s=duration_s * 0.02,
        seed=seed,
    )


WW_DESIGNS = ("dedicated", "chain", "spread", "pooled")


def wallace_whitt(
    design: str,
    *,
    skills: int = 6,
    erlangs_per_skill: float = 10.0,
    agents_per_skill: int = 12,
    handle_s: float = 300.0,
    duration_s: float = 400_000,
    seed: int = 1,
) -> Scenario:
    """Wallace & Whitt (2005): ``skills`` call types, the same head count, agents with one
    skill (dedicated), two skills in a chain (i, i+1 as level 2), two skills with the second
    spread evenly over the other types (spread), or all skills (pooled)."""
    names = [f"s{i + 1}" for i in range(skills)]
    steps = (Step(level=1, after_s=0), Step(level=2, after_s=0))
    settings = AcdSettings(
        skills={n: SkillPolicy(steps=steps) for n in names},
        fallback_skill=names[0],
        wrapup_s=0,
        priority_boost=0,
    )
    agents: dict[str, AgentProfile] = {}
    groups: dict[str, str] = {}
    if design not in WW_DESIGNS:
        raise ValueError(f"design must be one of {WW_DESIGNS}")
    for i, name in enumerate(names):
        for j in range(agents_per_skill):
            if design == "dedicated":
                profile = AgentProfile(skills={name: 1})
            elif design == "chain":
                profile = AgentProfile(skills={name: 1, names[(i + 1) % skills]: 2})
            elif design == "spread":
                second = names[(i + 1 + j % (skills - 1)) % skills]
                profile = AgentProfile(skills={name: 1, second: 2})
            else:
                profile = AgentProfile(skills=dict.fromkeys(names, 1))
            agent_id = f"{1000 + i * 100 + j}"
            agents[agent_id] = profile
            groups[agent_id] = name
    load = Load(rate_per_s=erlangs_per_skill / handle_s, handle=Dist("exp", handle_s))
    return Scenario(
        settings=settings,
        agents=agents,
        groups=groups,
        loads=dict.fromkeys(names, load),
        duration_s=duration_s,
        warmup_s=duration_s * 0.02,
        seed=seed,
    )


def hotline(*, duration_s: float = 200_000, seed: int = 1, patience_s: float = 180) -> Scenario:
    """The example hotline: eight 专席 skills with level-1 and level-2 agents, a 综合 queue,
    and 综合席 agents that take any skill's calls after 45 s; log-normal handle times."""
    settings = AcdSettings(wrapup_s=15)
    specialist = [s for s in settings.skills if s != "zonghe"]
    erlangs = dict(zip(specialist, (8, 6, 4, 3, 3, 2, 4, 2), strict=True)) | {"zonghe": 10}
    handle = dict.fromkeys(settings.skills, 240.0) | {"gjj": 300.0, "sifa": 420.0}
    agents: dict[str, AgentProfile] = {}
    groups: dict[str, str] = {}
    n = 1000
    for i, skill in enumerate(specialist):
        staff = max(2, round(erlangs[skill] * 1.15))
        for _ in range(staff):
            n += 1
            other = specialist[(i + 1) % len(specialist)]
            agents[str(n)] = AgentProfile(skills={skill: 1, other: 2})
            groups[str(n)] = skill
    for _ in range(16):
        n += 1
        agents[str(n)] = AgentProfile(general=True)
        groups[str(n)] = "zonghe"
    loads = {
        s: Load(
            rate_per_s=erlangs[s] / handle[s],
            handle=Dist("lognormal", handle[s] - settings.wrapup_s, 0.8),
            patience=Dist("exp", patience_s),
            priority_share=0.05,
        )
        for s in settings.skills
    }
    return Scenario(settings, agents, groups, loads, duration_s, duration_s * 0.02, seed)


# -- CLI --------------------------------------------------------------------------------------


def format_report(report: Report, sl_s: float = 20) -> str:
    """Per skill: offered, service level, ASA, abandoned, and the mean absolute error of the
    wait estimated at entry: the estimator's (observed time per place), its staffing model
    (place × handle ÷ capacity, what the router announces) and app_queue's queue-wide
    average (:class:`acd.estimate.QueueAverage`), all on the same calls."""
    head = (
        f"| skill | offered | SL≤{sl_s:g}s % | ASA s | abandoned % | est. MAE s "
        "| staffing MAE s | app_queue MAE s |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [*report.skills.items(), ("all", report.total())]
    for name, r in rows:
        lines.append(
            f"| {name} | {r.offered} | {100 * r.service_level:.1f} | {r.asa_s:.1f} "
            f"| {100 * r.abandon_rate:.1f} | {r.est_mae_s:.1f} | {r.staffing_mae_s:.1f} "
            f"| {r.peer_mae_s:.1f} |"
        )
    occ = ", ".join(f"{g} {100 * v:.0f}%" for g, v in report.occupancy.items())
    return "\n".join([*lines, f"occupancy: {occ}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acd.simulate", description=__doc__)
    parser.add_argument("scenario", choices=["erlang-c", "erlang-a", "wallace-whitt", "hotline"])
    parser.add_argument("--duration", type=float, default=None, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--erlangs", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=14)
    parser.add_argument("--handle", type=float, default=300.0)
    parser.add_argument("--patience", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.duration is not None and not 0 < args.duration <= 1e9:
        parser.error("--duration must be in (0, 1e9]")
    if not (0 < args.erlangs < 10_000 and 0 < args.agents <= 10_000 and args.handle > 0):
        parser.error("--erlangs, --agents and --handle must be positive (and sane)")
    kw: dict[str, float] = {} if args.duration is None else {"duration_s": args.duration}
    if args.scenario in ("erlang-c", "erlang-a"):
        patience = args.patience if args.scenario == "erlang-a" else None
        scen = single_skill(
            args.erlangs, args.handle, args.agents, patience_s=patience, seed=args.seed, **kw
        )
        report = simulate(scen)
        print(format_report(report))
        if patience is None:
            theory = erlang_c_service_level(args.agents, args.erlangs, args.handle, 20)
            asa = erlang_c_asa(args.agents, args.erlangs, args.handle)
            print(f"Erlang C: SL {100 * theory:.2f} %, ASA {asa:.1f} s")
        else:
            a = erlang_a(args.agents, args.erlangs / args.handle, args.handle, patience, 20)
            print(
                f"Erlang A: SL {100 * a['service_level']:.2f} %, "
                f"abandoned {100 * a['p_abandon']:.2f} %"
            )
    elif args.scenario == "wallace-whitt":
        for design in WW_DESIGNS:
            report = simulate(wallace_whitt(design, seed=args.seed, **kw))
            print(f"## {design}\n{format_report(report)}\n")
    else:
        print(format_report(simulate(hotline(seed=args.seed, **kw))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
