"""Repeat-caller throttling (《杭州市12345政务服务便民热线管理办法》第二十九条).

Per caller, Redis keeps bucketed counters over sliding windows: calls in the last hour
(twelve 5-minute buckets), and calls, seconds occupied and calls without a registrable
demand in the last day (24 hour buckets); plus agent harassment flags (sorted set over
``harassment_window_days``).  One Lua script per decision (one round trip, O(1): a fixed
HMGET of 86 fields and one ZCOUNT) reads the counters and applies the policy in stages:

``normal`` → ``warning`` (the caller hears the 第二十九条 notice, the agent sees the flag) →
``suspended`` for ``suspension_minutes`` (notice that still offers the emergency lines, then
the call ends) → after ``referral_after`` suspensions in ``referral_window_days`` the caller
is listed for referral (第二十九条 third paragraph).

* A suspension needs a warning first, at least ``grace_minutes`` earlier (提醒并给予合理时间).
  It resets the caller's counters and harassment flags: after it ends they start afresh.
  Calls made while suspended are not counted (they are blocked attempts, counted apart).
* Every warning, suspension, referral, harassment flag and lift is audited in two Redis
  streams: ``thr:{hash}:audit`` (the caller's) and ``thr:audit`` (everyone's).
* Allow-listed and withheld/anonymous numbers are never throttled (no Redis access).
* Fail open: Redis unreachable, failing or slower than ``redis.timeout_ms`` → ``normal`` with
  ``failed_open=True``, logged; nothing here raises into the call path.
* **Emergency lines are never decided here.**  :meth:`Throttle.decide` has no say over
  110/119/120/122: the IVR offers them to every caller, suspended ones included.

Caller numbers are never stored in Redis, only an HMAC pseudonym and a masked form
(:mod:`hotline.privacy`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hotline.config import HotlineConfig
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.privacy import CallerKey, mask, normalize

log = logging.getLogger(__name__)

Stage = Literal["normal", "warning", "suspended"]
PREFIX = "thr"
AUDIT_STREAM = f"{PREFIX}:audit"
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
"""An idempotency key for a harassment flag (a client-made UUID fits)."""
REFERRALS = f"{PREFIX}:referrals"
REFERRAL_INFO = f"{PREFIX}:referral_info"
AUDIT_MAXLEN = 100_000
CALLER_AUDIT_MAXLEN = 1_000
EPISODE_S = 86_400
"""A warning older than a day no longer counts towards a suspension."""
COUNTER_TTL_S = 2 * 86_400
STATS_PREFIX = "hotline:stats"
"""Per-day call statistics hash: ``hotline:stats:<yyyymmdd>`` field → count."""
STATS_TTL_S = 400 * 86_400
COUNTERS = ("calls_hour", "calls_day", "minutes_day", "no_demand_day", "harassment_flags")
LIMIT_FOR = {
    "calls_hour": "calls_per_hour",
    "calls_day": "calls_per_day",
    "minutes_day": "minutes_per_day",
    "no_demand_day": "no_demand_per_day",
    "harassment_flags": "harassment_flags",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the caller rules say about one call."""

    stage: Stage
    reasons: tuple[str, ...] = ()
    """Why: ``calls_hour>=5``, ``suspended``, ``withheld``, ``allow-listed``, ``referral`` …"""
    counters: dict[str, float] = field(default_factory=dict)
    failed_open: bool = False
    suspended_until: float | None = None

    @property
    def flag(self) -> str:
        """The value for the ``HOTLINE_CALLER_FLAG`` channel variable."""
        return self.stage


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited event: warning, suspension, referral, harassment or lift."""

    id: str
    at: float
    event: str
    by: str
    why: str
    caller_hash: str
    caller_masked: str
    call_id: str
    counters: dict[str, float]


@dataclass(frozen=True, slots=True)
class Referral:
    """A caller with repeated suspensions, listed for referral (第二十九条 third paragraph)."""

    caller_hash: str
    caller_masked: str
    suspensions: int
    listed_at: float


# ---- Lua ----------------------------------------------------------------------------------
# KEYS: 1 counters hash, 2 harassment zset, 3 suspensions zset, 4 caller audit stream,
#       5 global audit stream, 6 referrals zset, 7 referral info hash.
_PRELUDE = """
local now = tonumber(ARGV[1])
local b5 = math.floor(now / 300)
local bh = math.floor(now / 3600)
local function counters(harass_window)
  local f = {}
  for i = 0, 11 do f[#f + 1] = 'c5:' .. (b5 - i) end
  for i = 0, 23 do f[#f + 1] = 'ch:' .. (bh - i) end
  for i = 0, 23 do f[#f + 1] = 'sh:' .. (bh - i) end
  for i = 0, 23 do f[#f + 1] = 'nh:' .. (bh - i) end
  f[#f + 1] = 'su'
  f[#f + 1] = 'wf'
  local v = redis.call('HMGET', KEYS[1], unpack(f))
  local s = {0, 0, 0, 0}
  for i = 1, 12 do s[1] = s[1] + (tonumber(v[i]) or 0) end
  for i = 13, 36 do s[2] = s[2] + (tonumber(v[i]) or 0) end
  for i = 37, 60 do s[3] = s[3] + (tonumber(v[i]) or 0) end
  for i = 61, 84 do s[4] = s[4] + (tonumber(v[i]) or 0) end
  local h = redis.call('ZCOUNT', KEYS[2], now - harass_window, '+inf')
  return {s[1], s[2], s[3] / 60, s[4], h}, tonumber(v[85]), tonumber(v[86])
end
local function audit(event, by, why, masked, call_id, c)
  local cj = cjson.encode({calls_hour = c[1], calls_day = c[2], minutes_day = c[3],
                           no_demand_day = c[4], harassment_flags = c[5]})
  local args = {'at', tostring(now), 'event', event, 'by', by, 'why', why,
                'caller', KEYS[1], 'masked', masked, 'call_id', call_id, 'counters', cj}
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', CALLER_MAXLEN, '*', unpack(args))
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', AUDIT_MAXLEN, '*', unpack(args))
end
""".replace("CALLER_MAXLEN", str(CALLER_AUDIT_MAXLEN)).replace("AUDIT_MAXLEN", str(AUDIT_MAXLEN))

# ARGV: now, masked, call_id, dry, grace_s, suspension_s, harass_window_s, referral_after,
#       referral_window_s, warn limits x5, suspend limits x5
_DECIDE = (
    _PRELUDE
    + """
local masked, call_id, dry = ARGV[2], ARGV[3], ARGV[4] == '1'
local grace, susp_s, hwin = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ref_after, ref_win = tonumber(ARGV[8]), tonumber(ARGV[9])
local names = {'calls_hour', 'calls_day', 'minutes_day', 'no_demand_day', 'harassment_flags'}
local c, su, wf = counters(hwin)
local function out(stage, reasons, until_)
  return {stage, table.concat(reasons, ','), tostring(c[1]), tostring(c[2]), tostring(c[3]),
          tostring(c[4]), tostring(c[5]), tostring(until_ or '')}
end
if su and su > now then return out('suspended', {'suspended'}, su) end
local over_w, over_s = {}, {}
for i = 1, 5 do
  if c[i] >= tonumber(ARGV[14 + i]) then over_s[#over_s + 1] = names[i] .. '>=' .. ARGV[14 + i] end
  if c[i] >= tonumber(ARGV[9 + i]) then over_w[#over_w + 1] = names[i] .. '>=' .. ARGV[9 + i] end
end
if wf and now - wf > 86400 then wf = nil end
if #over_s > 0 and wf and now - wf >= grace then
  if dry then return out('suspended', over_s, now + susp_s) end
  local until_ = now + susp_s
  audit('suspension', 'system', table.concat(over_s, ','), masked, call_id, c)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'su', tostring(until_), 'm', masked)
  redis.call('EXPIRE', KEYS[1], math.ceil(susp_s) + 86400)
  redis.call('ZADD', KEYS[3], now, tostring(now))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ref_win)
  redis.call('EXPIRE', KEYS[3], math.ceil(ref_win))
  local n = redis.call('ZCARD', KEYS[3])
  if n >= ref_after then
    redis.call('ZADD', REFS_KEY, now, KEYS[1])
    redis.call('HSET', KEYS[7], KEYS[1], cjson.encode({masked = masked, suspensions = n}))
    audit('referral', 'system', n .. ' suspensions', masked, call_id, c)
    over_s[#over_s + 1] = 'referral'
  end
  return out('suspended', over_s, until_)
end
if #over_w > 0 or #over_s > 0 then
  local reasons = over_w
  if #reasons == 0 then reasons = over_s end
  if not dry then
    if not wf then redis.call('HSET', KEYS[1], 'wf', tostring(now)) end
    audit('warning', 'system', table.concat(reasons, ','), masked, call_id, c)
  end
  return out('warning', reasons, nil)
end
return out('normal', {}, nil)
"""
).replace("REFS_KEY", "KEYS[6]")

# ARGV: now, call_id, masked
_START = (
    _PRELUDE
    + """
local su = tonumber(redis.call('HGET', KEYS[1], 'su'))
if su and su > now then redis.call('HINCRBY', KEYS[1], 'blocked', 1) return 0 end
if redis.call('HGET', KEYS[1], 'ls') == ARGV[2] then return 0 end
local p = tonumber(redis.call('HGET', KEYS[1], 'p'))
if not p or now - p > 3600 then
  for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
    local kind, b = string.match(k, '^(%a+%d?):(%d+)$')
    b = tonumber(b)
    if kind == 'c5' and b <= b5 - 12 then redis.call('HDEL', KEYS[1], k)
    elseif kind and kind ~= 'c5' and b <= bh - 24 then redis.call('HDEL', KEYS[1], k) end
  end
  redis.call('HSET', KEYS[1], 'p', tostring(now))
end
redis.call('HINCRBY', KEYS[1], 'c5:' .. b5, 1)
redis.call('HINCRBY', KEYS[1], 'ch:' .. bh, 1)
redis.call('HSET', KEYS[1], 'ls', ARGV[2], 'm', ARGV[3])
if redis.call('TTL', KEYS[1]) < COUNTER_TTL then redis.call('EXPIRE', KEYS[1], COUNTER_TTL) end
return 1
"""
).replace("COUNTER_TTL", str(COUNTER_TTL_S))

# ARGV: now, call_id, seconds, had_demand
_END = (
    _PRELUDE
    + """
local su = tonumber(redis.call('HGET', KEYS[1], 'su'))
if su and su > now then return 0 end
if redis.call('HGET', KEYS[1], 'le') == ARGV[2] then return 0 end
local secs = math.floor(tonumber(ARGV[3]) + 0.5)
if secs > 0 then redis.call('HINCRBY', KEYS[1], 'sh:' .. bh, secs) end
if ARGV[4] ~= '1' then redis.call('HINCRBY', KEYS[1], 'nh:' .. bh, 1) end
redis.call('HSET', KEYS[1], 'le', ARGV[2])
if redis.call('TTL', KEYS[1]) < COUNTER_TTL then redis.call('EXPIRE', KEYS[1], COUNTER_TTL) end
return 1
"""
).replace("COUNTER_TTL", str(COUNTER_TTL_S))

# ARGV: now, by, note, masked, call_id, harass_window_s, request_id ('' = none; KEYS[8])
_FLAG = (
    _PRELUDE
    + """
local hwin = tonumber(ARGV[6])
if ARGV[7] ~= '' and not redis.call('SET', KEYS[8], '1', 'NX', 'EX', math.ceil(hwin)) then
  return counters(hwin)[5]
end
redis.call('ZADD', KEYS[2], now, tostring(now) .. ':' .. ARGV[2] .. ':' .. ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - hwin)
redis.call('EXPIRE', KEYS[2], math.ceil(hwin))
local c = counters(hwin)
audit('harassment', ARGV[2], ARGV[3], ARGV[4], ARGV[5], c)
return c[5]
"""
)

# ARGV: now, by, why, masked, clear_referral
_LIFT = (
    _PRELUDE
    + """
local c, su, wf = counters(86400 * 3650)
local was = 'normal'
if su and su > now then was = 'suspended' elseif wf then was = 'warning' end
audit('lift', ARGV[2], ARGV[3] .. ' (was ' .. was .. ')', ARGV[4], '', c)
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[6], KEYS[1])
  redis.call('HDEL', KEYS[7], KEYS[1])
  redis.call('DEL', KEYS[3])
end
return was
"""
)


class Throttle:
    """Repeat-caller rules over Redis; see the module docstring for the policy.

    ``clock`` returns the current Unix time (inject a fake one in tests).
    """

    def __init__(
        self,
        settings: ThrottleSettings,
        redis_settings: RedisSettings,
        key: CallerKey,
        *,
        clock: Callable[[], float] = time.time,
        client: Redis | None = None,
    ) -> None:
        self.settings = settings
        self._timeout = redis_settings.timeout_ms / 1000
        self._key = key
        self._clock = clock
        self._allow = frozenset(n for n in (normalize(a) for a in settings.allow_list) if n)
        self._redis = client or Redis(
            **redis_settings.client_kwargs(),  # type: ignore[arg-type]
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._decide = self._redis.register_script(_DECIDE)
        self._start = self._redis.register_script(_START)
        self._end = self._redis.register_script(_END)
        self._flag = self._redis.register_script(_FLAG)
        self._lift = self._redis.register_script(_LIFT)
        self._down_until = 0.0
        self.failures = 0
        """How many times Redis failed (each one logged; decisions failed open)."""

    @classmethod
    def from_config(cls, config: HotlineConfig, **kwargs: object) -> Throttle:
        """A throttle for ``config`` (reads or creates the PII key file)."""
        key = CallerKey.from_file(config.throttle.key_file)
        return cls(config.throttle, config.redis, key, **kwargs)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._redis.aclose()

    # ---- keys ---------------------------------------------------------------------------
    def _keys(self, h: str) -> list[str]:
        base = f"{PREFIX}:{h}"
        return [
            base,
            f"{base}:harass",
            f"{base}:susp",
            f"{base}:audit",
            AUDIT_STREAM,
            REFERRALS,
            REFERRAL_INFO,
        ]

    def _caller(self, caller: str | None) -> tuple[str | None, str]:
        n = normalize(caller)
        return (self._key.hash(n) if n else None), mask(n)

    async def _run(self, what: str, coro_factory: Callable[[], object]) -> object:
        """Run one Redis round trip within the timeout; ``None`` on any failure (logged)."""
        if time.monotonic() < self._down_until:
            return _FAILED
        try:
            return await asyncio.wait_for(coro_factory(), self._timeout)  # type: ignore[arg-type]
        except Exception as exc:  # fail open: nothing reaches the caller path
            self.failures += 1
            self._down_until = time.monotonic() + self.settings.failure_cooldown_ms / 1000
            log.warning(
                "throttle: redis %s failed (%s: %s); failing open",
                what,
                type(exc).__name__,
                exc,
            )
            return _FAILED

    # ---- the call path ------------------------------------------------------------------
    async def decide(self, caller: str | None, call_id: str = "", *, dry: bool = False) -> Decision:
        """The stage for this call; never raises.  ``dry`` reads without acting or auditing
        (for the agent console).  Emergency lines are not this function's business."""
        n = normalize(caller)
        if n is None:
            return Decision("normal", ("withheld",))
        if n in self._allow:
            return Decision("normal", ("allow-listed",))
        if not self.settings.enabled:
            return Decision("normal", ("disabled",))
        h, masked = self._key.hash(n), mask(n)
        s = self.settings
        args = [
            repr(self._clock()),
            masked,
            call_id,
            "1" if dry else "0",
            s.grace_minutes * 60,
            s.suspension_minutes * 60,
            s.harassment_window_days * 86400,
            s.referral_after,
            s.referral_window_days * 86400,
            *(getattr(s.warning, LIMIT_FOR[c]) for c in COUNTERS),
            *(getattr(s.suspension, LIMIT_FOR[c]) for c in COUNTERS),
        ]
        res = await self._run("decide", lambda: self._decide(keys=self._keys(h), args=args))
        if res is _FAILED:
            return Decision("normal", ("redis unavailable",), failed_open=True)
        try:
            stage, reasons, *nums, until = res  # type: ignore[misc]
            counters = dict(zip(COUNTERS, (float(x) for x in nums), strict=True))
            return Decision(
                stage,
                tuple(r for r in reasons.split(",") if r),
                counters,
                suspended_until=float(until) if until else None,
            )
        except (TypeError, ValueError) as exc:
            log.warning("throttle: unexpected decide reply %r (%s); failing open", res, exc)
            return Decision("normal", ("bad redis reply",), failed_open=True)

    async def record_call_start(self, caller: str | None, call_id: str) -> bool:
        """Count a call (once per ``call_id``); ``False`` if not counted.  Never raises."""
        h, masked = self._caller(caller)
        if h is None or normalize(caller) in self._allow:
            return False
        now = repr(self._clock())
        res = await self._run(
            "record_call_start",
            lambda: self._start(keys=self._keys(h), args=[now, call_id, masked]),
        )
        return res == 1

    async def record_call_end(
        self, caller: str | None, call_id: str, seconds: float, had_demand: bool
    ) -> bool:
        """Add the call's duration and whether it carried a registrable demand (诉求)."""
        if seconds < 0:
            raise ValueError(f"call duration must not be negative: {seconds}")
        h, _ = self._caller(caller)
        if h is None or normalize(caller) in self._allow:
            return False
        args = [repr(self._clock()), call_id, repr(float(seconds)), "1" if had_demand else "0"]
        res = await self._run("record_call_end", lambda: self._end(keys=self._keys(h), args=args))
        return res == 1

    async def count_stat(self, day: str, field_name: str) -> bool:
        """Add one to ``field_name`` of the day's statistics hash (``hotline:stats:<day>``,
        ``day`` as ``yyyymmdd``); ``False`` when Redis failed (logged).  Never raises."""
        if not (len(day) == 8 and day.isdigit()) or not field_name:
            log.warning("throttle: bad statistics key %r/%r; not counted", day, field_name)
            return False
        key = f"{STATS_PREFIX}:{day}"

        async def incr() -> object:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(key, field_name, 1)
                pipe.expire(key, STATS_TTL_S)
                return (await pipe.execute())[0]

        res = await self._run("count_stat", incr)
        return res is not _FAILED

    # ---- supervisors and agents ---------------------------------------------------------
    async def flag_harassment(
        self, caller: str, by: str, note: str, call_id: str = "", *, request_id: str = ""
    ) -> int:
        """An agent flags a call as harassment (骚扰、侮辱、谩骂); returns the caller's flags in
        the window.  With a ``request_id`` a retry of the same request adds no second flag
        (see :meth:`flag_stored`).  Raises :class:`ValueError` for a withheld number, an
        empty ``by`` or a malformed request id."""
        h, masked = self._require(caller, by)
        args = [
            repr(self._clock()),
            by,
            note,
            masked,
            call_id,
            self.settings.harassment_window_days * 86400,
            request_id,
        ]
        keys = [*self._keys(h), self._request_key(request_id)]
        return int(await self._flag(keys=keys, args=args))

    async def flag_stored(self, request_id: str) -> bool:
        """Whether the flag with this request id was stored (within the harassment window)."""
        return bool(await self._redis.exists(self._request_key(request_id)))

    @staticmethod
    def _request_key(request_id: str) -> str:
        if request_id and not REQUEST_ID.match(request_id):
            raise ValueError("a request id is 8-64 of A-Z a-z 0-9 _ . : -")
        return f"{PREFIX}:flagreq:{request_id}"

    async def lift(self, caller: str, by: str, why: str, *, clear_referral: bool = False) -> str:
        """Lift a caller's warning or suspension and reset their counters (audited).
        Returns the stage they were in.  Raises :class:`ValueError` for bad input."""
        h, masked = self._require(caller, by)
        if not why.strip():
            raise ValueError("a lift needs a reason")
        args = [repr(self._clock()), by, why, masked, "1" if clear_referral else "0"]
        return str(await self._lift(keys=self._keys(h), args=args))

    async def referrals(self) -> list[Referral]:
        """Callers listed for referral, most recent first."""
        rows = await self._redis.zrevrange(REFERRALS, 0, -1, withscores=True)
        if not rows:
            return []
        infos = await self._redis.hmget(REFERRAL_INFO, [k for k, _ in rows])
        out = []
        for (key, at), info in zip(rows, infos, strict=True):
            data = json.loads(info) if info else {}
            out.append(
                Referral(
                    caller_hash=key.removeprefix(f"{PREFIX}:"),
                    caller_masked=data.get("masked", ""),
                    suspensions=int(data.get("suspensions", 0)),
                    listed_at=float(at),
                )
            )
        return out

    async def audit(self, caller: str | None = None, count: int = 100) -> list[AuditRecord]:
        """Audit records, newest first: one caller's, or everyone's when ``caller`` is None."""
        if caller is None:
            stream = AUDIT_STREAM
        else:
            h, _ = self._caller(caller)
            if h is None:
                raise ValueError(f"withheld number has no audit trail: {caller!r}")
            stream = self._keys(h)[3]
        rows = await self._redis.xrevrange(stream, count=count)
        return [_record(i, f) for i, f in rows]

    def _require(self, caller: str, by: str) -> tuple[str, str]:
        h, masked = self._caller(caller)
        if h is None:
            raise ValueError(f"not a caller number: {caller!r}")
        if not by.strip():
            raise ValueError("who did it ('by') is required")
        return h, masked


_FAILED = object()


def _record(entry_id: str, f: dict[str, str]) -> AuditRecord:
    return AuditRecord(
        id=entry_id,
        at=float(f["at"]),
        event=f["event"],
        by=f["by"],
        why=f["why"],
        caller_hash=f["caller"].removeprefix(f"{PREFIX}:"),
        caller_masked=f["masked"],
        call_id=f["call_id"],
        counters={k: float(v) for k, v in json.loads(f["counters"]).items()},
    )
