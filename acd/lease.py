"""Several ACD routers on one Redis: one leader at a time, by a lease with a fencing token.

The lease is the key ``P lease`` = ``<token>|<router name>`` with a TTL (``acd.lease_s``);
the token comes from ``INCR P fence`` each time the lease changes hands.  The leader renews
it every heartbeat; a standby takes it once it expired (the leader died or hangs).  The
leader passes its token with every engine decision and the Lua script refuses a decision
whose token is not the current one (:class:`Fenced`): a deposed leader that wakes up late
changes nothing.  Locally a router counts itself leader only for ``SAFETY`` of the lease
after the start of its last successful renewal, so it stops carrying out offers (AMI
Redirects, which Asterisk cannot fence) before a standby can take the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from acd.policy import Refused

SAFETY = 0.8
"""Share of the lease a router trusts after a renewal started (clock drift, slow replies)."""

CLAIM = r"""
local key, fence, me, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local held = redis.call('GET', key)
if held then
  local token, holder = string.match(held, '^(%d+)|(.*)$')
  if holder ~= me then return 0 end
  redis.call('PEXPIRE', key, ttl)
  return tonumber(token)
end
local token = redis.call('INCR', fence)
redis.call('SET', key, token .. '|' .. me, 'PX', ttl)
return token
"""

RELEASE = r"""
local held = redis.call('GET', KEYS[1])
if held and held == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Fenced(Refused):
    """The decision came with a lease token that is no longer the current one."""


class Lease:
    """This router's hold on the leadership (``redis``: a sync client)."""

    def __init__(
        self,
        redis: Any,
        name: str,
        ttl_s: float,
        prefix: str = "acd:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.name = name
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.key = prefix + "lease"
        self.fence_key = prefix + "fence"
        self.clock = clock
        self.token: str | None = None
        self.valid_until = 0.0
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)

    def claim(self) -> bool:
        """Renew the lease, or take it if nobody holds it; True when this router now leads
        with a new token (it must reconcile before acting)."""
        started = self.clock()
        token = int(self._claim(keys=[self.key, self.fence_key], args=[self.name, self.ttl_ms]))
        if not token:
            self.token = None
            return False
        fresh = str(token) != self.token
        self.token = str(token)
        self.valid_until = started + SAFETY * self.ttl_ms / 1000
        return fresh

    def held(self) -> bool:
        """Whether this router may act now (its renewal is recent enough)."""
        return self.token is not None and self.clock() < self.valid_until

    def drop(self) -> None:
        """Forget the lease locally (a refused decision proved it lost)."""
        self.token = None

    def release(self) -> None:
        """Give the lease up at a clean stop, so a standby takes over at once."""
        if self.token is not None:
            self._release(keys=[self.key], args=[f"{self.token}|{self.name}"])
            self.token = None


def holder(redis: Any, prefix: str = "acd:") -> tuple[str, str] | None:
    """``(token, router name)`` of the current leader, or None."""
    raw = redis.get(prefix + "lease")
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    token, _, name = text.partition("|")
    return token, name
