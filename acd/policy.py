"""The routing policy, pure (no I/O, no clock): agent states, escalation, who gets which call.

:class:`Policy` holds agents and waiting calls in sorted sets that mirror the Redis engine
(``acd/engine.py``) key for key, so the simulator and the tests can check one against the
other.  Every method takes ``now`` (seconds) and returns the offers it made: an offer
reserves one agent for one call; the caller layer rings the agent and reports ``accept``,
``no_answer`` or ``hangup``.

Rules (docs/acd.md):
- a call is eligible for tier *i* of its skill ``steps[i].after_s`` after its arrival, or at
  once when no agent is logged in at any lower tier (no specialist to wait for);
- a call that can be served goes to the best (lowest) tier with a ready agent, to that tier's
  longest-idle agent;
- a freed agent takes, among the calls eligible for it, the one whose "virtual arrival"
  (arrival − priority × boost × service-level target) is oldest relative to its skill's
  target: urgency = (now − virtual arrival) ÷ target.  Waiting ages every call without bound.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from enum import StrEnum

from acd.settings import GENERAL, AcdSettings, AgentProfile


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    NOT_READY = "not_ready"


class Reason(StrEnum):
    """Why an agent is not ready."""

    BREAK = "break"
    TRAINING = "training"
    AFTER_CALL_WORK = "after_call_work"
    MEETING = "meeting"
    NO_ANSWER = "no_answer"


class Refused(ValueError):
    """An event that does not fit the current state (unknown agent, call already offered …)
    or carries a malformed id; nothing was changed."""


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_id(kind: str, value: object) -> str:
    """Agent, call and re-entry ids end up in Redis keys and in ``|``/``,``-separated
    members: letters, digits, ``.``, ``_``, ``-`` only (a channel uniqueid fits)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise Refused(f"malformed {kind} id {str(value)[:40]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Offer:
    call_id: str
    agent_id: str
    at: float


@dataclass(slots=True)
class _Agent:
    tiers: list[tuple[str, int]]
    keys: list[str]
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""
    idle_since: float = 0.0
    call: str = ""


@dataclass(slots=True)
class _Call:
    skill: str
    priority: int
    arrival: float
    varr: float
    reentry_key: str = ""
    state: str = "waiting"
    agent: str = ""
    tiers_in: int = 0
    """Tiers 0..tiers_in-1 hold the call (it is eligible for them)."""
    callback: bool = False
    """The caller hung up to be called back: the call keeps its place without a channel."""
    tries: int = 0
    """Callbacks that failed so far."""


class ZSet:
    """A sorted set with Redis's order (score, then member): lazy-deletion heap + dict."""

    __slots__ = ("_heap", "_live")

    def __init__(self) -> None:
        self._live: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def add(self, member: str, score: float) -> None:
        self._live[member] = score
        heapq.heappush(self._heap, (score, member))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [(s, m) for m, s in self._live.items()]
            heapq.heapify(self._heap)

    def remove(self, member: str) -> None:
        self._live.pop(member, None)

    def first(self) -> tuple[str, float] | None:
        heap = self._heap
        while heap:
            score, member = heap[0]
            if self._live.get(member) == score:
                return member, score
            heapq.heappop(heap)
        return None

    def rank(self, member: str) -> int:
        """0-based rank (O(n): for announcements, not decisions; Redis uses ZRANK)."""
        score = self._live[member]
        return sum(1 for m, s in self._live.items() if (s, m) < (score, member))

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, member: str) -> bool:
        return member in self._live


def ready_key(settings: AcdSettings, skill: str, tier: int) -> str:
    """The ready-agent set (and staffing counter) of a skill's tier; all general steps share
    one set, ``G``, because a 综合席 agent serves every skill's general step."""
    return "G" if settings.skills[skill].steps[tier].level == GENERAL else f"{skill}:{tier}"


class Policy:
    """Agents, waiting calls and the routing decisions, in memory."""

    def __init__(self, settings: AcdSettings, *, keep_log: bool = True) -> None:
        self.settings = settings
        self.keep_log = keep_log
        self._agents: dict[str, _Agent] = {}
        self._calls: dict[str, _Call] = {}
        self._queues: dict[tuple[str, int], ZSet] = {}
        self._ready: dict[str, ZSet] = {}
        self._staff: dict[str, int] = {}
        self._due = ZSet()
        self._reentry: dict[str, tuple[float, float, float]] = {}
        self.log: list[dict[str, object]] = []
        for skill, pol in settings.skills.items():
            for tier in range(len(pol.steps)):
                self._queues[skill, tier] = ZSet()
                self._ready.setdefault(ready_key(settings, skill, tier), ZSet())

    # -- agents ---------------------------------------------------------------------------

    def login(
        self, agent_id: str, profile: AgentProfile, now: float, *, ready: bool = True
    ) -> list[Offer]:
        agent = self._agents.get(check_id("agent", agent_id))
        if agent is not None and agent.state != AgentState.LOGGED_OUT:
            raise Refused(f"agent {agent_id} is already logged in")
        unknown = profile.unknown_skills(self.settings)
        if unknown:
            raise Refused(f"unknown skills {unknown}")
        tiers = profile.tiers(self.settings)
        keys = list(dict.fromkeys(ready_key(self.settings, s, t) for s, t in tiers))
        agent = self._agents[agent_id] = _Agent(tiers=tiers, keys=keys)
        for key in keys:
            self._staff[key] = self._staff.get(key, 0) + 1
        self._log(now, "login", agent=agent_id)
        if ready:
            return self._make_ready(agent_id, now, now)
        self._set(agent_id, AgentState.NOT_READY, now, reason=Reason.BREAK)
        return []

    def ready(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        if agent.state == AgentState.READY:
            return []
        if agent.state not in (AgentState.NOT_READY, AgentState.WRAPUP):
            raise Refused(f"agent {agent_id} is {agent.state}, cannot become ready")
        self._due.remove(f"w|{agent_id}")
        return self._make_ready(agent_id, now, now)

    def not_ready(self, agent_id: str, reason: Reason, now: float) -> None:
        agent = self._agent(agent_id)
        if agent.state not in (AgentState.READY, AgentState.WRAPUP, AgentState.NOT_READY):
            raise Refused(f"agent {agent_id} is {agent.state}, cannot go not ready")
        self._leave_ready(agent_id)
        self._due.remove(f"w|{agent_id}")
        self._set(agent_id, AgentState.NOT_READY, now, reason=Reason(reason))

    def logout(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        if agent.state in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.LOGGED_OUT):
            raise Refused(f"agent {agent_id} is {agent.state}, cannot log out")
        self._leave_ready(agent_id)
        self._due.remove(f"w|{agent_id}")
        self._set(agent_id, AgentState.LOGGED_OUT, now)
        emptied = []
        for key in agent.keys:
            self._staff[key] -= 1
            if self._staff[key] == 0:
                emptied.append(key)
        return self._sweep(emptied, now)

    def wrapup_end(self, agent_id: str, now: float) -> list[Offer]:
        if self._agent(agent_id).state != AgentState.WRAPUP:
            raise Refused(f"agent {agent_id} is not in wrap-up")
        return self.ready(agent_id, now)

    # -- calls ----------------------------------------------------------------------------

    def enqueue(
        self, call_id: str, skill: str, priority: int, now: float, *, reentry_key: str = ""
    ) -> list[Offer]:
        """A caller starts waiting for ``skill`` (unknown skills go to the fallback skill).
        A call id already known is ignored (an event delivered twice)."""
        check_id("call", call_id)
        if reentry_key:
            check_id("re-entry", reentry_key)
        if call_id in self._calls:
            return []
        if skill not in self.settings.skills:
            skill = self.settings.fallback_skill
        priority = max(0, min(int(priority), self.settings.max_priority))
        target = self.settings.skills[skill].service_level_s
        arrival = now
        varr = now - priority * self.settings.priority_boost * target
        old = self._reentry.pop(reentry_key, None) if reentry_key else None
        if old is not None and old[0] >= now:
            arrival, varr = old[1], min(varr, old[2])
        self._calls[call_id] = _Call(skill, priority, arrival, varr, reentry_key)
        self._log(now, "enqueue", call=call_id, skill=skill, priority=priority)
        return self._wait(call_id, now)

    def reprioritize(self, call_id: str, priority: int, now: float, *, by: str = "") -> None:
        """A supervisor's boost: the waiting call's priority set and its virtual arrival
        computed again from its arrival (aging goes on from there); no offer follows (the
        call's eligible agents are all busy, or it would not be waiting)."""
        call = self._calls.get(check_id("call", call_id))
        if call is None or call.state != "waiting":
            raise Refused(f"call {call_id} is not waiting")
        call.priority = max(0, min(int(priority), self.settings.max_priority))
        target = self.settings.skills[call.skill].service_level_s
        call.varr = call.arrival - call.priority * self.settings.priority_boost * target
        for tier in range(call.tiers_in):
            self._queues[call.skill, tier].add(call_id, call.varr)
        self._log(now, "priority", call=call_id, skill=call.skill, priority=call.priority, by=by)

    def accept(self, agent_id: str, call_id: str, now: float) -> None:
        agent, call = self._agent(agent_id), self._calls.get(call_id)
        if agent.state != AgentState.RESERVED or agent.call != call_id or call is None:
            raise Refused(f"agent {agent_id} holds no offer of call {call_id}")
        self._due.remove(f"r|{agent_id}")
        call.state = "on_call"
        self._set(agent_id, AgentState.ON_CALL, now, call=call_id)
        self._log(now, "answer", agent=agent_id, call=call_id, wait=now - call.arrival)

    def no_answer(self, agent_id: str, call_id: str, now: float) -> list[Offer]:
        """Ring-no-answer: the agent goes not ready ("no answer"), the call back to its place."""
        agent, call = self._agent(agent_id), self._calls.get(call_id)
        if agent.state != AgentState.RESERVED or agent.call != call_id or call is None:
            raise Refused(f"agent {agent_id} holds no offer of call {call_id}")
        self._due.remove(f"r|{agent_id}")
        self._set(agent_id, AgentState.NOT_READY, now, reason=Reason.NO_ANSWER)
        self._log(now, "no_answer", agent=agent_id, call=call_id)
        return self._wait(call_id, now)

    def callback(self, call_id: str, now: float) -> None:
        """A waiting caller chose to be called back: the call keeps its place (same arrival,
        same priority) but has no channel; its offers are callbacks."""
        call = self._calls.get(call_id)
        if call is None or call.state != "waiting":
            raise Refused(f"call {call_id} is not waiting")
        call.callback = True
        self._log(now, "callback", call=call_id, skill=call.skill)

    def callback_failed(self, agent_id: str, call_id: str, now: float) -> list[Offer]:
        """The callback of an offer was not answered (no answer, busy …): the agent is free
        again (its idle time kept), the call goes back to its place after ``retry_after_s``,
        or, after ``retries`` such failures, is given up (the caller layer makes a ticket)."""
        agent, call = self._agent(agent_id), self._calls.get(call_id)
        if agent.state != AgentState.RESERVED or agent.call != call_id or call is None:
            raise Refused(f"agent {agent_id} holds no offer of call {call_id}")
        if not call.callback:
            raise Refused(f"call {call_id} is not a callback")
        self._due.remove(f"r|{agent_id}")
        call.tries += 1
        if call.tries > self.settings.callback.retries:
            del self._calls[call_id]
            self._log(now, "callback_gave_up", call=call_id, skill=call.skill,
                      wait=now - call.arrival, tries=call.tries)  # fmt: skip
        else:
            call.state, call.agent = "retry", ""
            self._due.add(f"k|{call_id}", now + self.settings.callback.retry_after_s)
            self._log(now, "callback_retry", call=call_id, agent=agent_id, tries=call.tries)
        return self._make_ready(agent_id, now, agent.idle_since)

    def hangup(self, call_id: str, now: float) -> list[Offer]:
        """The call is gone: abandoned while waiting or ringing, or ended after an answer."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        wait = now - call.arrival
        if call.state == "retry":
            self._due.remove(f"k|{call_id}")
            self._log(now, "abandon", call=call_id, skill=call.skill, wait=wait)
            return []
        if call.state == "waiting":
            self._unqueue(call_id, call)
            self._log(now, "abandon", call=call_id, skill=call.skill, wait=wait)
            if call.reentry_key and self.settings.reentry_s > 0:
                self._reentry[call.reentry_key] = (
                    now + self.settings.reentry_s, call.arrival, call.varr,
                )  # fmt: skip
            return []
        agent_id = call.agent
        if call.state == "reserved":
            self._due.remove(f"r|{agent_id}")
            self._log(now, "abandon", call=call_id, skill=call.skill, wait=wait, agent=agent_id)
            return self._make_ready(agent_id, now, self._agents[agent_id].idle_since)
        self._log(now, "end", call=call_id, agent=agent_id)
        if self.settings.wrapup_s <= 0:
            return self._make_ready(agent_id, now, now)
        self._set(agent_id, AgentState.WRAPUP, now)
        self._due.add(f"w|{agent_id}", now + self.settings.wrapup_s)
        return []

    # -- time -----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        first = self._due.first()
        return None if first is None else first[1]

    def tick(self, now: float) -> list[Offer]:
        """Run what is due by ``now``: escalation steps, wrap-up ends, ring-no-answer, callbacks
        back from their retry wait."""
        offers: list[Offer] = []
        while (first := self._due.first()) is not None and first[1] <= now:
            member, _ = first
            self._due.remove(member)
            kind, _, rest = member.partition("|")
            if kind == "p":
                call_id = rest.rpartition("|")[0]
                self._advance(call_id, self._calls[call_id], now)
                offers += self._match_call(call_id, now)
            elif kind == "w":
                offers += self._make_ready(rest, now, now)
            elif kind == "k":
                offers += self._wait(rest, now)
            else:
                offers += self.no_answer(rest, self._agents[rest].call, now)
        return offers

    # -- reading --------------------------------------------------------------------------

    def agent_state(self, agent_id: str) -> tuple[AgentState, str, str]:
        """``(state, not-ready reason, call)``."""
        agent = self._agent(agent_id)
        return agent.state, agent.reason, agent.call

    def call_state(self, call_id: str) -> tuple[str, str] | None:
        call = self._calls.get(call_id)
        return None if call is None else (call.state, call.agent)

    def callback_tries(self, call_id: str) -> int | None:
        """Failed callbacks of a callback call; ``None`` for a call with a channel or gone."""
        call = self._calls.get(call_id)
        return call.tries if call is not None and call.callback else None

    def position(self, call_id: str) -> int:
        """1-based place among the calls waiting for the same skill."""
        call = self._calls[call_id]
        return self._queues[call.skill, 0].rank(call_id) + 1

    def waiting(self, skill: str) -> int:
        return len(self._queues[skill, 0])

    # -- decisions ------------------------------------------------------------------------

    def _wait(self, call_id: str, now: float) -> list[Offer]:
        """Put a call in the tiers it is eligible for, schedule the rest, try to serve it."""
        call = self._calls[call_id]
        call.state, call.agent, call.tiers_in = "waiting", "", 0
        self._advance(call_id, call, now)
        return self._match_call(call_id, now)

    def _advance(self, call_id: str, call: _Call, now: float) -> None:
        """Put the call in each further tier whose step time has come; one timer for the next."""
        steps = self.settings.skills[call.skill].steps
        for tier in range(call.tiers_in, len(steps)):
            at = call.arrival + steps[tier].after_s
            if now < at:
                self._due.add(f"p|{call_id}|{tier}", at)
                return
            self._queues[call.skill, tier].add(call_id, call.varr)
            call.tiers_in = tier + 1

    def _effective_tier(self, skill: str, tier: int) -> int:
        """A tier waits for its step unless nobody is logged in at any lower tier: then its
        agents may take the skill's calls at once (tier 0's queue)."""
        for lower in range(tier):
            if self._staff.get(ready_key(self.settings, skill, lower), 0) > 0:
                return tier
        return 0

    def _match_call(self, call_id: str, now: float) -> list[Offer]:
        call = self._calls[call_id]
        for tier in range(len(self.settings.skills[call.skill].steps)):
            if self._effective_tier(call.skill, tier) >= call.tiers_in:
                continue
            head = self._ready[ready_key(self.settings, call.skill, tier)].first()
            if head is not None:
                return [self._offer(call_id, head[0], now)]
        return []

    def _match_agent(self, agent_id: str, now: float) -> str | None:
        best, best_urgency = None, 0.0
        for skill, tier in self._agents[agent_id].tiers:
            head = self._queues[skill, self._effective_tier(skill, tier)].first()
            if head is None:
                continue
            urgency = (now - head[1]) / self.settings.skills[skill].service_level_s
            if best is None or urgency > best_urgency:
                best, best_urgency = head[0], urgency
        return best

    def _make_ready(self, agent_id: str, now: float, idle_since: float) -> list[Offer]:
        agent = self._agents[agent_id]
        self._set(agent_id, AgentState.READY, now)
        agent.idle_since = idle_since
        call_id = self._match_agent(agent_id, now)
        if call_id is not None:
            return [self._offer(call_id, agent_id, now)]
        for key in agent.keys:
            self._ready[key].add(agent_id, idle_since)
        return []

    def _sweep(self, emptied: list[str], now: float) -> list[Offer]:
        """Nobody left at a tier: ready agents of the tiers above may now take its calls."""
        offers: list[Offer] = []
        for key in emptied:
            if key == "G":
                continue
            skill, _, low = key.rpartition(":")
            for tier in range(int(low) + 1, len(self.settings.skills[skill].steps)):
                ready = self._ready[ready_key(self.settings, skill, tier)]
                while (head := ready.first()) is not None:
                    call_id = self._match_agent(head[0], now)
                    if call_id is None:
                        break
                    offers.append(self._offer(call_id, head[0], now))
        return offers

    def _offer(self, call_id: str, agent_id: str, now: float) -> Offer:
        call = self._calls[call_id]
        self._unqueue(call_id, call)
        self._leave_ready(agent_id)
        call.state, call.agent = "reserved", agent_id
        self._set(agent_id, AgentState.RESERVED, now, call=call_id)
        ring = self.settings.ring_timeout_s
        if call.callback:
            ring += self.settings.callback.ring_s
        self._due.add(f"r|{agent_id}", now + ring)
        self._log(now, "offer", agent=agent_id, call=call_id, skill=call.skill)
        return Offer(call_id, agent_id, now)

    def _unqueue(self, call_id: str, call: _Call) -> None:
        for tier in range(call.tiers_in):
            self._queues[call.skill, tier].remove(call_id)
        self._due.remove(f"p|{call_id}|{call.tiers_in}")

    def _leave_ready(self, agent_id: str) -> None:
        for key in self._agents[agent_id].keys:
            self._ready[key].remove(agent_id)

    def _set(
        self, agent_id: str, state: AgentState, now: float, *, reason: str = "", call: str = ""
    ) -> None:
        agent = self._agents[agent_id]
        agent.state, agent.reason, agent.call = state, reason, call
        self._log(now, "state", agent=agent_id, state=str(state), reason=reason)

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise Refused(f"unknown agent {agent_id!r}")
        return agent

    def _log(self, now: float, kind: str, **fields: object) -> None:
        if self.keep_log:
            self.log.append({"t": now, "ev": kind, **fields})
