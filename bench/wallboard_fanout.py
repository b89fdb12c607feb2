"""Wallboard fan-out: N open wallboard screens (SSE) while the call event stream carries 50
events/s — event written → the screen has it (p50/p95/max), the console's CPU, Redis
commands per second — for 5 screens and for 500, in the same run.

    nice -n 10 .venv/bin/python bench/wallboard_fanout.py [--seconds 10] [--rate 50]

A real redis-server (own port, temporary directory) and the real console (``console.app``
with its ``supervise.board.Board``, uvicorn) in a process of its own; the screens are raw
asyncio SSE clients in this process (logged in as one supervisor, bearer token).  Events
are written by the real ``calls.stream.CallStream`` (each call: joins gjj, answered 2 s
later, ends 3 s after that).  Latency of an event: from the moment ``XADD`` returned to the
first ``board`` message on a screen whose ``last_id`` is at or after that entry (so events
merged into one push count their full wait).  Server CPU: utime+stime of the console
process (``/proc``).  Redis: ``INFO commandstats`` calls over the run, without the
producer's ``XADD`` s (what the console itself sends: ``XREAD``, the ACD state reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]

from wallboard_kit import redis_server  # noqa: E402

PASSWORD = "bench-wallboard-password"
TICK = os.sysconf("SC_CLK_TCK")


def serve_console(redis_port: int, port: int, workdir: str) -> None:
    """The console (wallboard included) on ``port`` — runs in its own process."""
    import uvicorn
    from argon2 import PasswordHasher
    from redis.asyncio import Redis

    from access import AccessStore
    from console.app import Services, make_app
    from hotline.config import load_config
    from supervise.board import Board

    text = (ROOT / "hotline.yaml").read_text(encoding="utf-8")
    text = text.replace("run/tickets.sqlite3", f"{workdir}/t.sqlite3")
    text = text.replace("run/calls.sqlite3", f"{workdir}/calls.sqlite3")
    Path(workdir, "h.yaml").write_text(text)
    config = load_config(Path(workdir, "h.yaml"))
    access = AccessStore(Path(workdir, "a.sqlite3"), hasher=PasswordHasher(1, 8, 1))
    access.add_user("sup", PASSWORD, "supervisor")
    services = Services()
    services.board = Board.from_config(config, redis=lambda: Redis(port=redis_port))  # type: ignore[attr-defined]
    app = make_app(config, services, access=access)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


def cpu_wait_s(pid: int) -> float:
    """Seconds the process's main thread (the event loop) was runnable but waiting for a
    CPU (``/proc/PID/schedstat``): how much the machine's other load held it back."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def login(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"name": "sup", "password": PASSWORD, "bearer": True}).encode()
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    raw = await reader.read()
    writer.close()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])["token"]


def eid(text: str) -> tuple[int, int]:
    ms, seq = text.split("-")
    return int(ms), int(seq)


class Screen:
    """One SSE client: records, for every event, when it first saw it."""

    def __init__(self, published: list[tuple[tuple[int, int], float]]) -> None:
        self.published = published
        self.seen = 0
        self.latencies: list[float] = []
        self.messages = 0

    async def run(self, port: int, token: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/supervisor/wallboard/feed HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            while not stop.is_set():
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    ready.set()  # connected: the first snapshot came
                    self.messages += 1
                    at = line.find(b'"last_id":"')  # cheaper than parsing all of it
                    last = line[at + 11 : line.find(b'"', at + 11)].decode() if at > 0 else ""
                    if last:
                        self.mark(eid(last), time.time())
        finally:
            writer.close()

    def mark(self, last: tuple[int, int], now: float) -> None:
        while self.seen < len(self.published) and self.published[self.seen][0] <= last:
            self.latencies.append(now - self.published[self.seen][1])
            self.seen += 1


async def produce(redis_port: int, rate: float, seconds: float, published: list) -> None:
    """``rate`` events per second for ``seconds``: a call joins every ``3 / rate`` s, is
    answered 2 s later and ends 3 s after that."""
    from redis.asyncio import Redis

    from calls.stream import CallStream
    from hotline.call import CallEvent

    plan = []  # calls from 5 s before the start, so all three kinds run at full rate
    for i in range(int((seconds + 5) * rate / 3) + 1):
        t = i * 3 / rate - 5
        plan += [(t, "route", i), (t + 2, "agent", i), (t + 5, "ended", i)]
    plan = [p for p in sorted(plan) if 0 <= p[0] < seconds]
    data = {"route": {"seat": "gjj"}, "agent": {"agent": "1002"}, "ended": {}}
    stream = CallStream(Redis(port=redis_port))
    start = time.monotonic()
    for offset, kind, i in plan:
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
        call = f"bench{i}"
        entry = await stream.publish(CallEvent(kind, call, time.time(), "ami", call, data[kind]))
        if entry:
            published.append((eid(entry), time.time()))
    await stream.close()


def commands(redis_port: int) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``)."""
    from redis import Redis

    stats = Redis(port=redis_port).info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def console_commands(before: dict[str, int], after: dict[str, int]) -> int:
    """Commands sent by the console: all but the producer's XADDs and this script's INFO."""
    return sum(n - before.get(k, 0) for k, n in after.items() if k not in ("xadd", "info"))


async def one_run(
    screens_n: int, redis_port: int, port: int, pid: int, rate: float, seconds: float
) -> dict:
    token = await login(port)
    published: list[tuple[tuple[int, int], float]] = []
    stop = asyncio.Event()
    screens = [Screen(published) for _ in range(screens_n)]
    readies = [asyncio.Event() for _ in screens]
    tasks = [
        asyncio.create_task(s.run(port, token, r, stop))
        for s, r in zip(screens, readies, strict=True)
    ]
    began = time.monotonic()
    await asyncio.gather(*(r.wait() for r in readies))  # every screen has its first snapshot
    connect_s = time.monotonic() - began
    await asyncio.sleep(1.0)
    cpu0, cmd0, t0 = cpu_s(pid), commands(redis_port), time.monotonic()
    own0, wait0 = cpu_s(os.getpid()), cpu_wait_s(pid)
    await produce(redis_port, rate, seconds, published)
    await asyncio.sleep(1.5)  # the last pushes arrive
    cpu1, cmd1, t1 = cpu_s(pid), commands(redis_port), time.monotonic()
    own1, wait1 = cpu_s(os.getpid()), cpu_wait_s(pid)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(x for s in screens for x in s.latencies)
    expected = len(published) * screens_n
    return {
        "screens": screens_n,
        "connect_s": connect_s,
        "events": len(published),
        "delivered": f"{len(lat)}/{expected}",
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
        "max_ms": 1000 * lat[-1] if lat else float("nan"),
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "client_cpu_pct": 100 * (own1 - own0) / (t1 - t0),
        "wait_pct": 100 * (wait1 - wait0) / (t1 - t0),
        "redis_cmd_s": console_commands(cmd0, cmd1) / (t1 - t0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=50.0, help="events per second")
    ap.add_argument("--screens", type=int, nargs="+", default=[5, 500])
    args = ap.parse_args()
    from browser_kit import free_port

    rows = []
    with redis_server() as redis_port, tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        proc = mp.get_context("spawn").Process(
            target=serve_console, args=(redis_port, port, workdir)
        )
        proc.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    asyncio.run(login(port))
                    break
                except (OSError, ValueError, KeyError):
                    if time.monotonic() > deadline or not proc.is_alive():
                        raise
                    time.sleep(0.3)
            for n in args.screens:
                rows.append(
                    asyncio.run(one_run(n, redis_port, port, proc.pid, args.rate, args.seconds))
                )
        finally:
            proc.terminate()
            proc.join(10)
    print(f"wallboard fan-out: {args.rate:.0f} events/s for {args.seconds:.0f} s per run")
    print(
        f"{'screens':>8} {'events':>7} {'delivered':>13} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'console CPU %':>14} {'…waiting for CPU %':>19} {'console Redis cmd/s':>20} "
        f"{'screens CPU %':>14} {'all open s':>11}"
    )
    for r in rows:
        print(
            f"{r['screens']:>8} {r['events']:>7} {r['delivered']:>13} {r['p50_ms']:>8.0f} "
            f"{r['p95_ms']:>8.0f} {r['max_ms']:>8.0f} {r['cpu_pct']:>14.1f} {r['wait_pct']:>19.1f} "
            f"{r['redis_cmd_s']:>20.1f} {r['client_cpu_pct']:>14.1f} {r['connect_s']:>11.1f}"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(
            f"{b['screens']} vs {a['screens']} screens: p95 ×{b['p95_ms'] / a['p95_ms']:.2f}, "
            f"CPU ×{b['cpu_pct'] / max(a['cpu_pct'], 0.1):.2f}, "
            f"Redis cmd/s ×{b['redis_cmd_s'] / max(a['redis_cmd_s'], 0.1):.2f} "
            "(target: p95 ≤ 1000 ms; Redis commands independent of the screens)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
