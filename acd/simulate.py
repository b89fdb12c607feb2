"""Discrete-event simulation of the ACD with the production policy (no Redis needed).

Poisson arrivals per skill, handle-time and patience distributions; agents answer offers at
once.  The router is :class:`acd.policy.Policy` unless another object with the same methods
(the Redis engine) is given.  Reports per skill: service level (answered within ``sl_s`` among
offered calls), average speed of answer, abandonment, the wait estimate's error; occupancy
per agent group.

    python -m acd.simulate erlang-c
    python -m acd.simulate wallace-whitt --duration 200000
    python -m acd.simulate estimates      # wait estimates: tuning vs held-out seeds
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from acd.erlang import erlang_a, erlang_c_asa, erlang_c_service_level
from acd.estimate import HANDLE_ALPHA, QueueAverage, WaitEstimator, announced_wait
from acd.policy import Offer, Policy
from acd.settings import AcdSettings, AgentProfile, SkillPolicy, Step


@dataclass(frozen=True, slots=True)
class Dist:
    """A positive random duration: exponential, constant, log-normal or uniform (mean and
    CV; uniform on ``mean × (1 ± √3·cv)``)."""

    kind: Literal["exp", "const", "lognormal", "uniform"]
    mean: float
    cv: float = 1.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "exp":
            return rng.expovariate(1 / self.mean)
        if self.kind == "const":
            return self.mean
        if self.kind == "uniform":
            half = math.sqrt(3) * self.cv * self.mean
            return rng.uniform(self.mean - half, self.mean + half)
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
    default_handle_s: float = 300.0
    """The handle time the estimates use before any call of a skill has ended."""


MODELS = ("announced", "staffing_kept", "observed", "staffing", "app_queue")
"""The wait estimates the simulator scores on the same calls (see :func:`format_estimates`)."""


@dataclass
class SkillReport:
    offered: int = 0
    answered: int = 0
    within_sl: int = 0
    abandoned: int = 0
    wait_answered_s: float = 0.0
    errors: dict[str, list[float]] = field(default_factory=dict)
    """Model → absolute errors of the estimate made at entry, one per caller who waited and
    was answered (a *scored* caller)."""
    scored: int = 0
    scored_wait_s: float = 0.0

    @property
    def service_level(self) -> float:
        return self.within_sl / self.offered if self.offered else math.nan

    @property
    def asa_s(self) -> float:
        return self.wait_answered_s / self.answered if self.answered else math.nan

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan

    def mae(self, model: str) -> float:
        """Mean absolute error of ``model``'s estimate at entry (NaN with no such call)."""
        return _mean(self.errors.get(model, []))

    def merge(self, other: SkillReport) -> None:
        self.offered += other.offered
        self.answered += other.answered
        self.within_sl += other.within_sl
        self.abandoned += other.abandoned
        self.wait_answered_s += other.wait_answered_s
        self.scored += other.scored
        self.scored_wait_s += other.scored_wait_s
        for model, errors in other.errors.items():
            self.errors.setdefault(model, []).extend(errors)


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
            out.merge(r)
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
    estimates: dict[str, float] | None = None
    agent: str = ""
    answered: float = 0.0


Probe = Callable[[str], float | None]
"""Reads an estimate for a call just queued (e.g. the announcement, from Redis)."""


def simulate(
    scenario: Scenario, router: Router | None = None, probes: Mapping[str, Probe] | None = None
) -> Report:
    """Run ``scenario``; arrivals stop at ``duration_s``, then the queues drain.

    Estimates scored at entry (:data:`MODELS`): ``announced`` is the production rule
    (:func:`acd.estimate.announced_wait`) fed as the engine feeds it: the gap and the handle
    time kept as the Lua script keeps them (handle time at the call's end, weight
    :data:`~acd.estimate.HANDLE_ALPHA`), capacity = agents logged in at the skill's tiers;
    ``staffing_kept`` is its staffing model alone (what was announced before the gap was
    kept); ``observed`` and ``staffing`` are :class:`~acd.estimate.WaitEstimator`'s
    (handle times seen at the answer, capacity by share of calls); ``app_queue`` is
    :class:`~acd.estimate.QueueAverage`.  ``probes`` add models read by name."""
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
    estimator = WaitEstimator(scenario.default_handle_s)
    kept = WaitEstimator(scenario.default_handle_s, alpha=HANDLE_ALPHA)
    peer = QueueAverage()
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
            kept.observe_answer(call.skill, now, wait)
            if wait > 0:
                peer.observe(call.skill, wait)
            if call.counted:
                rep = reports[call.skill]
                rep.answered += 1
                rep.within_sl += wait <= scenario.sl_s
                rep.wait_answered_s += wait
                if call.estimates is not None:
                    rep.scored += 1
                    rep.scored_wait_s += wait
                    for model, est in call.estimates.items():
                        rep.errors.setdefault(model, []).append(abs(est - wait))
                group = scenario.groups[offer.agent_id]
                busy[group] = busy.get(group, 0.0) + done
            call.estimates = None
            call.agent, call.answered = offer.agent_id, now
            push(now + call.handle, "end", offer.call_id)

    def estimates(call_id: str, skill: str) -> dict[str, float]:
        position = router.position(call_id)
        cap = estimator.capacity(skill, serving[skill])
        handle = kept.handle(skill)
        handle = scenario.default_handle_s if handle is None else handle
        out = {
            "announced": announced_wait(position, len(serving[skill]), handle, kept.gap(skill)),
            "staffing_kept": announced_wait(position, len(serving[skill]), handle, None),
            "observed": estimator.estimate(skill, position, cap),
            "staffing": estimator.staffing_estimate(skill, position, cap),
            "app_queue": peer.estimate(skill),
        }
        for name, probe in (probes or {}).items():
            out[name] = probe(call_id)
        return {k: v for k, v in out.items() if v is not None}

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
                call.estimates = estimates(call_id, ref)
            handle_offers(offers, now)
        elif kind == "abandon":
            state = router.call_state(ref)
            if state is not None and state[0] == "waiting":
                call = calls.pop(ref)
                if call.counted:
                    reports[call.skill].abandoned += 1
                handle_offers(router.hangup(ref, now), now)
        else:
            ended = calls.pop(ref, None)
            if ended is not None:  # the engine keeps talk + wrap-up when the call ends
                done = now - ended.answered + scenario.settings.wrapup_s
                kept.observe(ended.agent, ended.skill, done)
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


def two_agents(*, duration_s: float = 96, seed: int = 1) -> Scenario:
    """The real-call bench (``bench/acd_wait_estimate.py``) in the simulator: two 公积金
    agents, callers at exponential gaps (mean 6 s) who hold on, talk uniform 8–24 s, wrap-up
    2 s, default handle 30 s; 96 s of arrivals is its 16 callers on average."""
    settings = AcdSettings(
        skills={"gjj": SkillPolicy(steps=(Step(level=1, after_s=0),))},
        fallback_skill="gjj",
        wrapup_s=2,
        priority_boost=0,
    )
    agents = {a: AgentProfile(skills={"gjj": 1}) for a in ("1002", "1009")}
    load = Load(rate_per_s=1 / 6, handle=Dist("uniform", 16.0, 8 / (16 * math.sqrt(3))))
    return Scenario(
        settings, agents, dict.fromkeys(agents, "gjj"), {"gjj": load}, duration_s,
        seed=seed, default_handle_s=30.0,
    )  # fmt: skip


def pooled(make: Callable[[int], Scenario], seeds: Iterable[int]) -> Report:
    """One report over several seeded runs (each skill's calls and errors together)."""
    out = Report({}, {}, 0)
    for seed in seeds:
        report = simulate(make(seed))
        out.decisions += report.decisions
        for name, r in report.skills.items():
            out.skills.setdefault(name, SkillReport()).merge(r)
    return out


TUNING_SEEDS = {"hotline": range(1, 4), "two-agents": range(1, 201)}
"""Seeds the announced rule and :data:`acd.estimate.GAP_ALPHA` were chosen on."""
HELD_OUT_SEEDS = {"hotline": range(11, 16), "two-agents": range(1001, 1201)}
"""Seeds not looked at while choosing: the figures to quote."""

MODEL_LABELS = {
    "announced": "announced: ½ observed gap + ½ staffing",
    "staffing_kept": "staffing, kept handle (announced before)",
    "observed": "observed gap (WaitEstimator)",
    "staffing": "staffing, capacity by call shares",
    "app_queue": "app_queue's average",
}


def format_estimates(report: Report) -> str:
    """Per model (:data:`MODELS`, then any probe): the MAE of the wait estimated at entry,
    per skill and over all, on the same callers (those who waited and were answered)."""
    total = report.total()
    names = [*report.skills, "all"]
    models = [*MODELS, *(m for m in total.errors if m not in MODELS)]
    rows = [*report.skills.values(), total]
    lines = [
        "| model | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        "| callers scored (n) | " + " | ".join(str(r.scored) for r in rows) + " |",
        "| their mean wait s | " + " | ".join(f"{_mean_wait(r):.1f}" for r in rows) + " |",
    ]
    for model in models:
        maes = " | ".join(f"{r.mae(model):.1f}" for r in rows)
        lines.append(f"| {MODEL_LABELS.get(model, model)} | {maes} |")
    return "\n".join(lines)


def _mean_wait(r: SkillReport) -> float:
    """Mean real wait of the callers whose estimates are scored."""
    return r.scored_wait_s / r.scored if r.scored else math.nan


# -- CLI --------------------------------------------------------------------------------------


def format_report(report: Report, sl_s: float = 20) -> str:
    """Per skill: offered, service level, ASA, abandoned, and the mean absolute error of the
    wait announced at entry (:func:`acd.estimate.announced_wait`) beside app_queue's
    queue-wide average, on the same calls; then every model's (:func:`format_estimates`)."""
    head = (
        f"| skill | offered | SL≤{sl_s:g}s % | ASA s | abandoned % | announced MAE s "
        "| app_queue MAE s |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    rows = [*report.skills.items(), ("all", report.total())]
    for name, r in rows:
        lines.append(
            f"| {name} | {r.offered} | {100 * r.service_level:.1f} | {r.asa_s:.1f} "
            f"| {100 * r.abandon_rate:.1f} | {r.mae('announced'):.1f} | {r.mae('app_queue'):.1f} |"
        )
    occ = ", ".join(f"{g} {100 * v:.0f}%" for g, v in report.occupancy.items())
    estimates = format_estimates(report)
    return "\n".join(
        [*lines, f"occupancy: {occ}", "", "wait estimated at entry, MAE s:", estimates]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acd.simulate", description=__doc__)
    parser.add_argument(
        "scenario",
        choices=["erlang-c", "erlang-a", "wallace-whitt", "hotline", "two-agents", "estimates"],
        help="estimates: the estimate models on the tuning and the held-out seeds of "
        "hotline and two-agents (--duration applies to hotline, default 100000)",
    )
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
    elif args.scenario == "estimates":
        hotline_s = args.duration or 100_000
        makers: dict[str, Callable[[int], Scenario]] = {
            "hotline": lambda seed: hotline(duration_s=hotline_s, seed=seed),
            "two-agents": lambda seed: two_agents(seed=seed),
        }
        for name, make in makers.items():
            for kind, seeds in (("tuning", TUNING_SEEDS), ("held-out", HELD_OUT_SEEDS)):
                span = f"{seeds[name][0]}–{seeds[name][-1]}"
                table = format_estimates(pooled(make, seeds[name]))
                print(f"## {name}, {kind} seeds {span}\n{table}\n")
    elif args.scenario == "two-agents":
        print(format_report(simulate(two_agents(seed=args.seed, **kw))))
    elif args.scenario == "wallace-whitt":
        for design in WW_DESIGNS:
            report = simulate(wallace_whitt(design, seed=args.seed, **kw))
            print(f"## {design}\n{format_report(report)}\n")
    else:
        print(format_report(simulate(hotline(seed=args.seed, **kw))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
