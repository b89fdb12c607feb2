"""Benchmark: throttle decision time with a million known callers in Redis.

Starts its own redis-server on a free loopback port (no persistence), loads ``--callers``
callers with realistic counters (pipelined), then times ``Throttle.decide()`` — the real
Lua script, one round trip — for ``--decisions`` random known callers from a Python client on
loopback, and prints p50/p90/p99/max.  Also times ``record_call_start``/``record_call_end``
and the fail-open path while Redis is paused.  Target: decision p99 < 2 ms.

    .venv/bin/python bench/throttle_bench.py [--callers 1000000] [--decisions 20000] [--uvloop]

Bounded: ``--max-seconds`` (default 600) stops loading/measuring early; the Redis it started
is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis import Redis as SyncRedis

from callers.throttle import PREFIX, Throttle
from hotline.config import Redis as RedisSettings
from hotline.config import Throttle as ThrottleSettings
from hotline.privacy import CallerKey

NOW = 1_795_000_000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def number(i: int) -> str:
    """The i-th known caller: 11-digit mobile numbers 13x/15x/18x."""
    return f"1{(3, 5, 8)[i % 3]}{i:09d}"


def caller_fields(rng: random.Random) -> tuple[dict[str, str], int]:
    """Counters for one caller as the throttle keeps them: most called once or twice today,
    a few are heavy repeat callers, some are warned or suspended.  Returns (fields, flags)."""
    b5, bh = int(NOW // 300), int(NOW // 3600)
    r = rng.random()
    calls = 1 if r < 0.70 else 2 if r < 0.90 else rng.randint(3, 6) if r < 0.995 else 15
    f: dict[str, str] = {}
    for _ in range(calls):
        age_h = rng.randint(0, 23) if calls < 15 else rng.randint(0, 1)
        if age_h == 0:
            k = f"c5:{b5 - rng.randint(0, 11)}"
            f[k] = str(int(f.get(k, 0)) + 1)
        for kind, inc in (("ch", 1), ("sh", rng.randint(30, 600)), ("nh", rng.random() < 0.2)):
            k = f"{kind}:{bh - age_h}"
            if inc:
                f[k] = str(int(f.get(k, 0)) + int(inc))
    f["m"] = "138****0000"
    f["ls"] = f"call-{rng.randint(0, 10**9)}"
    if r > 0.9995:
        f["su"] = str(NOW + 3600)
    elif r > 0.995:
        f["wf"] = str(NOW - 1800)
    flags = 1 if rng.random() < 0.001 else 0
    return f, flags


def load(client: SyncRedis, key: CallerKey, n: int, deadline: float) -> int:
    rng = random.Random(12345)
    pipe = client.pipeline(transaction=False)
    loaded = 0
    for i in range(n):
        h = f"{PREFIX}:{key.hash(number(i))}"
        fields, flags = caller_fields(rng)
        pipe.hset(h, mapping=fields)
        pipe.expire(h, 2 * 86400)
        if flags:
            pipe.zadd(f"{h}:harass", {f"{NOW - 3600}:agent1008": NOW - 3600})
        loaded += 1
        if loaded % 5000 == 0:
            pipe.execute()
            if time.monotonic() > deadline:
                print(f"  time limit: stopped loading at {loaded} callers")
                break
    pipe.execute()
    return loaded


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def report(name: str, ms: list[float]) -> None:
    print(
        f"  {name}: n={len(ms)} p50={pct(ms, 50):.3f} ms p90={pct(ms, 90):.3f} ms "
        f"p99={pct(ms, 99):.3f} ms max={max(ms):.3f} ms mean={statistics.fmean(ms):.3f} ms"
    )


async def measure(port: int, key: CallerKey, loaded: int, decisions: int, deadline: float) -> None:
    clock = [NOW]
    t = Throttle(ThrottleSettings(), RedisSettings(port=port), key, clock=lambda: clock[0])
    rng = random.Random(54321)
    try:
        for _ in range(200):  # warm up: connection, script cache
            await t.decide(number(rng.randrange(loaded)))
        ms: list[float] = []
        stages: Counter[str] = Counter()
        failed = 0
        for i in range(decisions):
            caller = number(rng.randrange(loaded))
            t0 = time.perf_counter()
            d = await t.decide(caller, f"bench-{i}")
            ms.append((time.perf_counter() - t0) * 1000)
            stages[d.stage] += 1
            failed += d.failed_open
            clock[0] += 0.01
            if time.monotonic() > deadline:
                print(f"  time limit: stopped after {i + 1} decisions")
                break
        report("decide()", ms)
        print(f"  stages: {dict(stages)}; failed open: {failed}")
        rec: list[float] = []
        for i in range(min(5000, decisions)):
            caller = number(rng.randrange(loaded))
            t0 = time.perf_counter()
            await t.record_call_start(caller, f"rec-{i}")
            await t.record_call_end(caller, f"rec-{i}", 95.0, had_demand=True)
            rec.append((time.perf_counter() - t0) * 1000)
        report("record_call_start+end", rec)
        # Fail open while Redis is paused (every decision waits for the 50 ms timeout; the
        # cool-down then answers at once without Redis).
        pauser = SyncRedis(port=port)
        pauser.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        fo: list[float] = []
        for _ in range(20):
            t0 = time.perf_counter()
            d = await t.decide(number(rng.randrange(loaded)))
            fo.append((time.perf_counter() - t0) * 1000)
            assert d.failed_open and d.stage == "normal"
        report("decide() while Redis paused (fail open, incl. cool-down)", fo)
        print(f"  first fail-open decision: {fo[0]:.1f} ms (timeout_ms=50)", flush=True)
        pauser.close()
    finally:
        await t.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callers", type=int, default=1_000_000)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    args = ap.parse_args()
    if not 1 <= args.callers <= 5_000_000 or not 1 <= args.decisions <= 1_000_000:
        ap.error("--callers must be 1..5e6 and --decisions 1..1e6")
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.max_seconds
    port = free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = SyncRedis(port=port, decode_responses=True)
        for _ in range(250):
            try:
                client.ping()
                break
            except Exception:
                time.sleep(0.02)
        version = client.info("server")["redis_version"]
        print(f"redis-server {version} on 127.0.0.1:{port}; python {sys.version.split()[0]}")
        key = CallerKey(b"bench-secret-0123456789abcdef")
        t0 = time.perf_counter()
        loaded = load(client, key, args.callers, deadline)
        took = time.perf_counter() - t0
        mem = client.info("memory")
        print(
            f"loaded {loaded} callers in {took:.1f} s ({loaded / took:,.0f}/s); "
            f"keys={client.dbsize()} used_memory={mem['used_memory_human']}"
        )
        print(f"event loop: {'uvloop' if args.uvloop else 'asyncio'}")
        coro = measure(port, key, loaded, args.decisions, deadline)
        if args.uvloop:
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
