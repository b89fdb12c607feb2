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

from acd.lease import Fenced
from acd.lua import NOTE_ESTIMATE, SCRIPT
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
        self.fence: str | None = None
        """The lease token of a router that is one of several (``acd/lease.py``): every
        decision carries it and is refused (:class:`Fenced`) once another router leads."""
        self._note = client.register_script(NOTE_ESTIMATE)
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
        cb = self.settings.callback
        with self._r.pipeline() as pipe:
            pipe.hset(self.prefix + "skills", mapping=fields)
            pipe.hset(self.prefix + "cbcfg", mapping={
                "ring": repr(float(cb.ring_s)), "retries": str(cb.retries),
                "after": repr(float(cb.retry_after_s)),
            })  # fmt: skip
            pipe.delete(self.prefix + "gts")
            if targets:
                pipe.sadd(self.prefix + "gts", *targets)
            pipe.execute()

    def _call(self, op: str, now: float, *args: str) -> list[Offer]:
        if not isinstance(now, int | float) or now != now:
            raise Refused(f"bad time {now!r}")
        try:
            op_text = op if self.fence is None else f"{op}|{self.fence}"
            raw = self._script(
                keys=[self.prefix], args=[op_text, repr(float(now)), *self._timers, *args]
            )
        except ResponseError as exc:
            if str(exc).startswith("REFUSED fenced"):
                raise Fenced(str(exc)[8:]) from None
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

    def callback(self, call_id: str, now: float) -> None:
        self._call("callback", now, check_id("call", call_id))

    def callback_failed(self, agent_id: str, call_id: str, now: float) -> list[Offer]:
        return self._call("callback_failed", now, agent_id, call_id)

    def note_estimate(self, call_id: str, wait_s: float) -> bool:
        """Record the wait estimated for ``call_id`` when it was queued; the engine logs it
        with the real wait when the call is answered (``est_n``, ``est_abs_err`` in the
        skill's counters).  False when the call is no longer waiting."""
        check_id("call", call_id)
        if not (isinstance(wait_s, int | float) and 0 <= wait_s < 1e7):
            raise Refused(f"bad estimate {wait_s!r}")
        return bool(self._note(keys=[f"{self.prefix}c:{call_id}"], args=[repr(float(wait_s))]))

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

    def callback_tries(self, call_id: str) -> int | None:
        cb, tries = self._r.hmget(f"{self.prefix}c:{call_id}", "cb", "tries")
        return int(_text(tries) or 0) if _text(cb) == "1" else None

    def position(self, call_id: str) -> int:
        skill = _text(self._r.hget(f"{self.prefix}c:{call_id}", "sk"))
        rank = self._r.zrank(f"{self.prefix}q:{skill}:0", call_id)
        if rank is None:
            raise Refused(f"call {call_id} is not waiting")
        return rank + 1

    def waiting(self, skill: str) -> int:
        return self._r.zcard(f"{self.prefix}q:{skill}:0")

    def handle_times(self, skill: str) -> tuple[float | None, dict[str, float]]:
        """The skill's handle time (talk + wrap-up, moving average) and each agent's for
        this skill, as kept when calls end; ``None`` before any call of the skill ended."""
        raw = {
            _text(k): float(_text(v)) for k, v in self._r.hgetall(f"{self.prefix}h:{skill}").items()
        }
        return raw.pop("*", None), raw

    def time_per_place(self, skill: str) -> tuple[float | None, int]:
        """The skill's observed time per place as kept at the answers (``acd.estimate
        .next_gap``) and the gaps counted; ``(None, 0)`` before any caller of it waited."""
        gap, n = self._r.hmget(f"{self.prefix}g:{skill}", "gap", "n")
        return (None, 0) if gap is None else (float(_text(gap)), int(_text(n) or 0))

    def estimate_errors(self) -> dict[str, tuple[int, float]]:
        """Per skill: answered calls that had an entry estimate and the mean absolute error
        of that estimate against their real wait (seconds)."""
        out: dict[str, tuple[int, float]] = {}
        for skill in self.settings.skills:
            n, err = self._r.hmget(f"{self.prefix}n:skill:{skill}", "est_n", "est_abs_err")
            count = int(_text(n) or 0)
            if count:
                out[skill] = (count, float(_text(err)) / count)
        return out


def _by(by: str) -> str:
    """Who asked, for the log: printable, at most 64 characters."""
    return "".join(ch for ch in by[:64] if ch.isprintable())


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
