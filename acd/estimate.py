"""Estimated wait per skill from the caller's position, the staffing and the handle times.

For a caller at position *p*, the wait is about *p* × the time it takes the skill's queue to
advance one place.  Two models of that time:

- staffing: ``handle ÷ capacity``, with *capacity* the agents serving the skill, each counted
  by the share of its recent calls that were this skill, and ``handle`` a moving average of
  talk + wrap-up per skill (exact for one skill, blind to overflow between tiers);
- observed (the default once data exists): a moving average of the gaps between the skill's
  answers while its queue was not empty, which folds in overflow to level-2 and 综合席
  agents and abandonment ahead.

app_queue instead announces a moving average of past waits for the whole queue, whatever
the caller's position (:class:`QueueAverage`, kept as the peer in the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable


class WaitEstimator:
    def __init__(self, default_handle_s: float = 300.0, alpha: float = 0.02) -> None:
        self._default = default_handle_s
        self._alpha = alpha
        self._handle: dict[str, float] = {}
        self._served: dict[str, dict[str, float]] = {}
        self._last: dict[str, float] = {}
        self._gap: dict[str, float] = {}

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

    def observe_answer(self, skill: str, now: float, wait_s: float) -> None:
        """A call of ``skill`` was answered after ``wait_s``: the gap since the skill's last
        answer, within this call's wait (the queue was not empty then), is one observed
        "time per place" in the queue."""
        last = self._last.get(skill)
        self._last[skill] = now
        if wait_s <= 0:
            return
        gap = wait_s if last is None else min(now - last, wait_s)
        old = self._gap.get(skill)
        self._gap[skill] = gap if old is None else old + self._alpha * (gap - old)

    def estimate(self, skill: str, position: int, capacity: float) -> float:
        """``position × time per place``: the observed time per place once known, else
        :meth:`staffing_estimate`."""
        gap = self._gap.get(skill)
        if gap is None:
            return self.staffing_estimate(skill, position, capacity)
        return position * gap

    def staffing_estimate(self, skill: str, position: int, capacity: float) -> float:
        """``position × handle ÷ capacity``: exact in expectation for one skill with busy
        agents and exponential handle times; blind to overflow between skills."""
        return position * self._handle.get(skill, self._default) / max(capacity, 0.1)


class QueueAverage:
    """app_queue's estimate: a moving average of the queue's past waits, ``(3·old + new) / 4``."""

    def __init__(self) -> None:
        self._hold: dict[str, float] = {}

    def observe(self, skill: str, wait_s: float) -> None:
        old = self._hold.get(skill, 0.0)
        self._hold[skill] = (3 * old + wait_s) / 4

    def estimate(self, skill: str) -> float:
        return self._hold.get(skill, 0.0)
