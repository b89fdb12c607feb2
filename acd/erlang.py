"""Queueing formulas the simulator is checked against (pure Python).

- Erlang C (M/M/n): probability of waiting, service level, average speed of answer.
- Erlang A (M/M/n+M, Palm): exponential patience; abandonment and service level from the
  birth–death chain, the service level by uniformisation of a tagged caller's progress.
"""

from __future__ import annotations

import math


def erlang_b(agents: int, erlangs: float) -> float:
    b = 1.0
    for k in range(1, agents + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a call waits (M/M/n); 1.0 when the load reaches the agents."""
    if erlangs >= agents:
        return 1.0
    b = erlang_b(agents, erlangs)
    return agents * b / (agents - erlangs * (1 - b))


def erlang_c_service_level(agents: int, erlangs: float, handle_s: float, t_s: float) -> float:
    """Share of calls answered within ``t_s`` seconds."""
    if erlangs >= agents:
        return 0.0
    return 1 - erlang_c(agents, erlangs) * math.exp(-(agents - erlangs) * t_s / handle_s)


def erlang_c_asa(agents: int, erlangs: float, handle_s: float) -> float:
    if erlangs >= agents:
        return math.inf
    return erlang_c(agents, erlangs) * handle_s / (agents - erlangs)


def _erlang_a_states(
    agents: int, rate: float, handle_s: float, patience_s: float
) -> tuple[list[float], float, float]:
    """Stationary probabilities of the number in system (truncated where negligible)."""
    mu, theta = 1 / handle_s, 1 / patience_s
    logs = [0.0]
    for k in range(1, 100_000):
        death = min(k, agents) * mu + max(k - agents, 0) * theta
        logs.append(logs[-1] + math.log(rate / death))
        if k > agents and logs[-1] < max(logs) - 40:
            break
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    return [w / total for w in weights], mu, theta


def erlang_a(
    agents: int, rate: float, handle_s: float, patience_s: float, t_s: float
) -> dict[str, float]:
    """M/M/n+M: ``p_wait``, ``p_abandon`` and ``service_level`` (answered within ``t_s``
    among all offered calls, abandoned ones included)."""
    pi, mu, theta = _erlang_a_states(agents, rate, handle_s, patience_s)
    queue = pi[agents:]
    p_wait = sum(queue)
    p_abandon = sum(p * j * theta for j, p in enumerate(queue)) / rate
    # A tagged caller with j callers ahead advances at n·mu + j·theta and gives up at theta.
    ahead = list(queue)
    served, top = 0.0, len(ahead) - 1
    lam = agents * mu + top * theta + theta
    steps = int(lam * t_s + 12 * math.sqrt(lam * t_s + 1) + 30)
    served_by_t = 0.0
    for m in range(steps + 1):
        poisson = math.exp(-lam * t_s + m * math.log(lam * t_s) - math.lgamma(m + 1))
        if m > 0:
            nxt = [0.0] * len(ahead)
            for j, p in enumerate(ahead):
                move = (agents * mu + j * theta) / lam
                if j == 0:
                    served += p * move
                else:
                    nxt[j - 1] += p * move
                nxt[j] += p * (1 - move - theta / lam)
            ahead = nxt
        served_by_t += poisson * served
    return {
        "p_wait": p_wait,
        "p_abandon": p_abandon,
        "service_level": (1 - p_wait) + served_by_t,
    }
