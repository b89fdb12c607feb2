"""Estimated wait per skill from the caller's position, the staffing and the handle times.

For a caller at position *p*, the wait is about *p* × the time it takes the skill's queue to
advance one place.  Two models of that time:

- staffing: ``handle ÷ capacity``, with *capacity* the agents serving the skill, and
  ``handle`` a moving average of talk + wrap-up per skill (exact for one skill, blind to
  overflow between tiers);
- observed: a moving average of the gaps between the skill's answers of queued calls
  (:func:`next_gap`), which folds in overflow to level-2 and 综合席 agents and abandonment
  ahead.

What a caller is told (:func:`announced_wait`, fed from the engine's Redis keys) is the
staffing model until a gap is kept, then a blend of both (:data:`OBSERVED_WEIGHT`).
:class:`WaitEstimator` keeps both models in memory for the simulator (its *capacity* counts
each agent by the share of its recent calls that were this skill).

app_queue instead announces a moving average of past waits for the whole queue, whatever
the caller's position (:class:`QueueAverage`, kept as the peer in the benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

GAP_ALPHA = 0.02
"""Weight of the newest gap in the observed time per place once ``1 / GAP_ALPHA`` gaps were
seen (a plain mean of the gaps before: the first one does not linger); here and in the
engine's Lua."""
OBSERVED_WEIGHT = 0.5
"""The announced time per place: this share of the observed gap, the rest the staffing
model's ``handle ÷ capacity`` (chosen on the tuning seeds, docs/acd.md "Estimated wait")."""
HANDLE_ALPHA = 0.1
"""Weight of the newest ended call in the handle times the engine keeps (``P h:<skill>``)."""
MAX_GAP_S = 3600.0
"""A kept time per place above this (or negative, or not a number) is not believed."""


def sane_gap(gap: float | None) -> bool:
    """A time per place worth announcing: a finite number in ``[0, MAX_GAP_S]``."""
    return gap is not None and math.isfinite(gap) and 0 <= gap <= MAX_GAP_S


def next_gap(
    gap: float | None,
    n: int,
    last: float | None,
    now: float,
    wait_s: float,
    queued: bool,
    alpha: float = GAP_ALPHA,
) -> tuple[float | None, int]:
    """The time per place and its count of gaps after a call of the skill is answered at
    ``now`` after ``wait_s``; ``last`` is the skill's previous answer.  Only a call that was
    ``queued`` (not offered the moment it came: the queue was not empty, or nobody was free)
    counts; its gap is the time since ``last``, at most its own wait (the whole wait when
    there is no earlier answer or ``last`` lies after ``now``), weighted
    ``max(alpha, 1 / n)``.  An old value that is not :func:`sane_gap`, or without a count,
    starts again.  The engine's accept path does the same in Lua (``acd/lua.py``)."""
    if not (queued and wait_s > 0):
        return gap, n
    sample = wait_s
    if last is not None and last <= now:
        sample = min(now - last, wait_s)
    if gap is None or not sane_gap(gap) or n < 1:
        return sample, 1
    n += 1
    return gap + max(alpha, 1 / n) * (sample - gap), n


class WaitEstimator:
    def __init__(
        self,
        default_handle_s: float = 300.0,
        alpha: float = 0.02,
        gap_alpha: float = GAP_ALPHA,
    ) -> None:
        self._default = default_handle_s
        self._alpha = alpha
        self._gap_alpha = gap_alpha
        self._handle: dict[str, float] = {}
        self._served: dict[str, dict[str, float]] = {}
        self._last: dict[str, float] = {}
        self._gap: dict[str, float] = {}
        self._gaps: dict[str, int] = {}

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

    def observe_answer(
        self, skill: str, now: float, wait_s: float, queued: bool | None = None
    ) -> None:
        """A call of ``skill`` was answered after ``wait_s``: if it was ``queued`` (default:
        it waited), the gap since the skill's last answer, within this call's wait, is one
        observed "time per place" in the queue (:func:`next_gap`)."""
        gap, n = next_gap(
            self._gap.get(skill),
            self._gaps.get(skill, 0),
            self._last.get(skill),
            now,
            wait_s,
            wait_s > 0 if queued is None else queued,
            self._gap_alpha,
        )
        self._last[skill] = now
        if gap is not None:
            self._gap[skill], self._gaps[skill] = gap, n

    def handle(self, skill: str) -> float | None:
        """The skill's moving handle time; ``None`` before any call of it was observed."""
        return self._handle.get(skill)

    def gap(self, skill: str) -> float | None:
        """The skill's observed time per place; ``None`` before any call of it waited."""
        return self._gap.get(skill)

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


def announced_wait(
    position: int, capacity: float, handle_s: float, gap_s: float | None
) -> float | None:
    """What a caller at ``position`` is told (``acd/announce.py``, the router's entry
    estimate): the staffing model ``position × handle_s ÷ capacity`` until the observed time
    per place ``gap_s`` is known and :func:`sane_gap`, then :data:`OBSERVED_WEIGHT` of
    ``position × gap_s`` and the rest of the staffing model.  ``None`` when nobody serving
    the skill is logged in (``capacity`` 0)."""
    if capacity <= 0:
        return None
    staffing = position * handle_s / capacity
    if gap_s is None or not sane_gap(gap_s):
        return staffing
    return OBSERVED_WEIGHT * position * gap_s + (1 - OBSERVED_WEIGHT) * staffing
