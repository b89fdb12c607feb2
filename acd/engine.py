"""The ACD's decisions in Redis: every event is one atomic Lua call (``acd/lua.py``).

:class:`RedisEngine` has the methods of :class:`acd.policy.Policy` and makes the same
decisions on the same events; any number of ACD workers may share one Redis.  Each decision
touches the heads of sorted sets (the caller's skill tiers, the agent's skill queues) and
never scans all agents or calls.  Time comes from the caller (``now``) so that workers share
one clock source (the event's) and tests can replay a sequence.
"""

from __future__ import annotations

from redis import Redis
from redis.exceptions import ResponseError

from acd.lua import SCRIPT
from acd.policy import AgentState, Offer, Reason, Refused, check_id, ready_key
from acd.settings import AcdSettings, AgentProfile

TICK_BATCH = 200
"""Timers handled per Lua call (keeps each call short; the engine loops until none is due)."""


class RedisEngine:
    def __init__(self, client: Redis, settings: AcdSettings, prefix: str = "acd:") -> None:
        self.settings = settings
        self.prefix = prefix
        self._r = client
        self._script = client.register_script(SCRIPT)
        self._timers = [
            repr(float(settings.ring_timeout_s)),
            repr(float(settings.wrapup_s)),
            repr(float(settings.reentry_s)),
        ]

    def install(self) -> None:
        """Write the skills' steps into Redis (every worker may do it; same content)."""
        fields = {}
        for skill, pol in self.settings.skills.items():
            after = ",".join(repr(float(s.after_s)) for s in pol.steps)
            keys = ",".join(ready_key(self.settings, skill, t) for t in range(len(pol.steps)))
            fields[skill] = f"{float(pol.service_level_s)!r}|{after}|{keys}"
        targets = {
            repr(float(p.service_level_s))
            for p in self.settings.skills.values()
            if p.general_tier is not None
        }
        with self._r.pipeline() as pipe:
            pipe.hset(self.prefix + "skills", mapping=fields)
            pipe.delete(self.prefix + "gts")
            if targets:
                pipe.sadd(self.prefix + "gts", *targets)
            pipe.execute()

    def _call(self, op: str, now: float, *args: str) -> list[Offer]:
        if not isinstance(now, int | float) or now != now:
            raise Refused(f"bad time {now!r}")
        try:
            raw = self._script(
                keys=[self.prefix], args=[op, repr(float(now)), *self._timers, *args]
            )
        except ResponseError as exc:
            if str(exc).startswith("REFUSED "):
                raise Refused(str(exc)[8:]) from None
            raise
        items = [x.decode() if isinstance(x, bytes) else x for x in raw]
        if items and items[-1] == "more":
            items.pop()
            self._more = True
        return [Offer(items[i], items[i + 1], now) for i in range(0, len(items), 2)]

    # -- agents ---------------------------------------------------------------------------

    def login(
        self, agent_id: str, profile: AgentProfile, now: float, *, ready: bool = True
    ) -> list[Offer]:
        check_id("agent", agent_id)
        unknown = profile.unknown_skills(self.settings)
        if unknown:
            raise Refused(f"unknown skills {unknown}")
        tiers = profile.tiers(self.settings)
        keys = dict.fromkeys(ready_key(self.settings, s, t) for s, t in tiers)
        target = {s: float(p.service_level_s) for s, p in self.settings.skills.items()}
        explicit = [(s, t) for s, t in tiers if ready_key(self.settings, s, t) != "G"]
        tier_text = ",".join(f"{s}:{t}:{target[s]!r}" for s, t in explicit)
        flags = ("1" if ready else "0", "1" if profile.general else "0")
        return self._call("login", now, agent_id, tier_text, ",".join(keys), *flags)

    def ready(self, agent_id: str, now: float) -> list[Offer]:
        return self._call("ready", now, agent_id)

    def not_ready(self, agent_id: str, reason: Reason, now: float) -> None:
        self._call("not_ready", now, agent_id, str(Reason(reason)))

    def logout(self, agent_id: str, now: float) -> list[Offer]:
        return self._call("logout", now, agent_id)

    def wrapup_end(self, agent_id: str, now: float) -> list[Offer]:
        return self._call("wrapup_end", now, agent_id)

    # -- calls ----------------------------------------------------------------------------

    def enqueue(
        self, call_id: str, skill: str, priority: int, now: float, *, reentry_key: str = ""
    ) -> list[Offer]:
        check_id("call", call_id)
        if reentry_key:
            check_id("re-entry", reentry_key)
        if skill not in self.settings.skills:
            skill = self.settings.fallback_skill
        priority = max(0, min(int(priority), self.settings.max_priority))
        target = self.settings.skills[skill].service_level_s
        varr = now - priority * self.settings.priority_boost * target
        return self._call("enqueue", now, call_id, skill, str(priority), repr(varr), reentry_key)

    def reprioritize(self, call_id: str, priority: int, now: float, *, by: str = "") -> None:
        """A supervisor's boost: the waiting call's priority set, re-scored atomically."""
        check_id("call", call_id)
        priority = max(0, min(int(priority), self.settings.max_priority))
        boost = repr(float(self.settings.priority_boost))
        self._call("priority", now, call_id, str(priority), boost, _by(by))

    def accept(self, agent_id: str, call_id: str, now: float) -> None:
        self._call("accept", now, agent_id, call_id)

    def no_answer(self, agent_id: str, call_id: str, now: float) -> list[Offer]:
        return self._call("no_answer", now, agent_id, call_id)

    def hangup(self, call_id: str, now: float) -> list[Offer]:
        return self._call("hangup", now, call_id)

    # -- time -----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        first = self._r.zrange(self.prefix + "due", 0, 0, withscores=True)
        return first[0][1] if first else None

    def tick(self, now: float) -> list[Offer]:
        offers: list[Offer] = []
        while True:
            self._more = False
            offers += self._call("tick", now, str(TICK_BATCH))
            if not self._more:
                return offers

    # -- reading --------------------------------------------------------------------------

    def agent_state(self, agent_id: str) -> tuple[AgentState, str, str]:
        st, reason, call = self._r.hmget(f"{self.prefix}a:{agent_id}", "st", "rs", "call")
        if st is None:
            raise Refused(f"unknown agent {agent_id!r}")
        return AgentState(_text(st)), _text(reason), _text(call)

    def call_state(self, call_id: str) -> tuple[str, str] | None:
        st, agent = self._r.hmget(f"{self.prefix}c:{call_id}", "st", "ag")
        return None if st is None else (_text(st), _text(agent))

    def position(self, call_id: str) -> int:
        skill = _text(self._r.hget(f"{self.prefix}c:{call_id}", "sk"))
        rank = self._r.zrank(f"{self.prefix}q:{skill}:0", call_id)
        if rank is None:
            raise Refused(f"call {call_id} is not waiting")
        return rank + 1

    def waiting(self, skill: str) -> int:
        return self._r.zcard(f"{self.prefix}q:{skill}:0")


def _by(by: str) -> str:
    """Who asked, for the log: printable, at most 64 characters."""
    return "".join(ch for ch in by[:64] if ch.isprintable())


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
