"""Estimated wait per skill from the caller's position, the staffing and the handle times.

For a caller at position *p* when every eligible agent is busy, the wait is the time until
*p* agents free up: about ``p × handle ÷ capacity`` seconds, where *capacity* is the number of
agents serving the skill, each counted by the share of its recent calls that were this skill
(a 综合席 agent serving nine skills counts as the fraction of its work that skill takes).
``handle`` is a moving average of talk plus wrap-up time per skill.  This differs from
app_queue's estimate, a moving average of past waits for the whole queue
(:class:`QueueAverage`, kept as the peer in the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable


class WaitEstimator:
    def __init__(self, default_handle_s: float = 300.0, alpha: float = 0.02) -> None:
        self._default = default_handle_s
        self._alpha = alpha
        self._handle: dict[str, float] = {}
        self._served: dict[str, dict[str, float]] = {}

    def observe(self, agent_id: str, skill: str, handle_s: float) -> None:
        """An answered call of ``skill`` took ``handle_s`` (talk + wrap-up) at ``agent_id``."""
        old = self._handle.get(skill)
        self._handle[skill] = handle_s if old is None else old + self._alpha * (handle_s - old)
        counts = self._served.setdefault(agent_id, {})
        for key in counts:
            counts[key] *= 1 - self._alpha
        counts[skill] = counts.get(skill, 0.0) + self._alpha

    def capacity(self, skill: str, agents: Iterable[tuple[str, int]]) -> float:
        """Agents serving ``skill``, given as ``(agent id, number of skills it serves)``."""
        total = 0.0
        for agent_id, n_skills in agents:
            counts = self._served.get(agent_id)
            if counts:
                total += counts.get(skill, 0.0) / sum(counts.values())
            else:
                total += 1 / max(n_skills, 1)
        return total

    def estimate(self, skill: str, position: int, capacity: float) -> float:
        handle = self._handle.get(skill, self._default)
        return position * handle / max(capacity, 0.1)


class QueueAverage:
    """app_queue's estimate: a moving average of the queue's past waits, ``(3·old + new) / 4``."""

    def __init__(self) -> None:
        self._hold: dict[str, float] = {}

    def observe(self, skill: str, wait_s: float) -> None:
        old = self._hold.get(skill, 0.0)
        self._hold[skill] = (3 * old + wait_s) / 4

    def estimate(self, skill: str) -> float:
        return self._hold.get(skill, 0.0)
