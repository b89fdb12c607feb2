"""Our FastAGI server vs panoramisk's ``fast_agi`` under the same synthetic AGI load.

One process serves (pinned to core 0), another plays Asterisk (pinned to core 1): it opens
``--concurrency`` sessions at a time, each sending an AGI environment block and answering
every command with ``200 result=0`` at once.  Each session runs a menu: 3 STREAM FILE, one
WAIT FOR DIGIT, 5 SET VARIABLE, then the server closes it.  Printed per server: sessions/s
(wall clock), server CPU seconds used, sessions per server-CPU-second (what one core
sustains), p50/p99 of the command round trip seen by the load generator (our reply written
→ the next command read), and the ratio ours/panoramisk from the same run.

    .venv/bin/python bench/fastagi_vs_panoramisk.py [--sessions 20000] [--concurrency 200]

Loopback only; bounded by ``--sessions`` and ``--max-s`` per server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE, LOAD_CORE = 0, 1
PROMPTS = ("hotline/greeting", "hotline/main-menu", "hotline/seat-gjj")
VARIABLES = ("HOTLINE_QUEUE", "HOTLINE_SEAT", "HOTLINE_PRIORITY", "HOTLINE_IVR_PATH")
COMMANDS_PER_SESSION = len(PROMPTS) + 1 + len(VARIABLES) + 1


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def env_block(i: int) -> bytes:
    """What res_agi sends for ``AGI(agi://127.0.0.1:4573/bench)`` (Asterisk 22 field set)."""
    lines = [
        "agi_network: yes",
        "agi_network_script: bench",
        "agi_request: agi://127.0.0.1:4573/bench",
        f"agi_channel: PJSIP/carrier-{i:08x}",
        "agi_language: zh",
        "agi_type: PJSIP",
        f"agi_uniqueid: 1763841600.{i}",
        "agi_version: 22.10.1",
        f"agi_callerid: 138{i:08d}",
        "agi_calleridname: 张三",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 12345",
        "agi_rdnis: unknown",
        "agi_context: from-carrier",
        "agi_extension: 12345",
        "agi_priority: 3",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140245123456",
    ]
    return ("\n".join(lines) + "\n\n").encode()


# ---- servers ----------------------------------------------------------------------------
async def serve_ours(port_file: Path) -> None:
    from agi_scripts.server import AgiApp, AgiServer
    from agi_scripts.session import AgiSession

    async def menu(session: AgiSession, app: AgiApp) -> None:
        for prompt in PROMPTS:
            if await session.stream_file(prompt, "0123456789*#"):
                break
        await session.wait_for_digit(5000)
        for name in VARIABLES:
            await session.set_variable(name, "gjj")
        await session.set_variable("HOTLINE_ROUTE", "queue")

    server = AgiServer(AgiApp(config=None, handlers={"bench": menu}))
    _, port = await server.start("127.0.0.1", 0)
    port_file.write_text(str(port))
    await asyncio.Event().wait()


async def serve_panoramisk(port_file: Path) -> None:
    from panoramisk.fast_agi import Application

    async def menu(request) -> None:  # type: ignore[no-untyped-def]
        for prompt in PROMPTS:
            res = await request.send_command(f'STREAM FILE {prompt} "0123456789*#"')
            if res["result"][0] not in ("0", ""):
                break
        await request.send_command("WAIT FOR DIGIT 5000")
        for name in VARIABLES:
            await request.send_command(f'SET VARIABLE {name} "gjj"')
        await request.send_command('SET VARIABLE HOTLINE_ROUTE "queue"')

    app = Application(loop=asyncio.get_running_loop())
    app.add_route("bench", menu)
    server = await asyncio.start_server(app.handler, "127.0.0.1", 0, backlog=1024)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    await asyncio.Event().wait()


def run_server(kind: str, loop_kind: str, port_file: Path) -> None:
    pin(SERVER_CORE)
    import logging

    logging.basicConfig(level=logging.WARNING)
    if loop_kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    coro = serve_ours if kind == "ours" else serve_panoramisk
    asyncio.run(coro(port_file))


# ---- load generator ---------------------------------------------------------------------
class FakeAsterisk(asyncio.Protocol):
    """One session: env block out, ``200 result=0`` for each command line in."""

    def __init__(self, gen: LoadGen, i: int) -> None:
        self.gen = gen
        self.i = i
        self.buf = b""
        self.sent_at = 0.0
        self.commands = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent_at = time.perf_counter()
        transport.write(env_block(self.i))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf + data
        n = buf.count(b"\n")
        if n:
            self.buf = buf[buf.rfind(b"\n") + 1 :]
            self.commands += n
            if self.gen.measuring:
                self.gen.rtt.append(now - self.sent_at)
            self.sent_at = time.perf_counter()
            assert self.transport is not None
            self.transport.write(b"200 result=0\n" * n)
        else:
            self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.session_done(self)


class LoadGen:
    def __init__(self, port: int, sessions: int, concurrency: int, warmup: int, max_s: float):
        self.port = port
        self.total = sessions + warmup
        self.warmup = warmup
        self.concurrency = concurrency
        self.max_s = max_s
        self.started = 0
        self.finished = 0
        self.bad = 0
        self.measuring = False
        self.rtt: array[float] = array("d")
        self.t0 = self.t1 = 0.0
        self.done = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def start_one(self) -> None:
        if self.started >= self.total or (self.measuring and self._elapsed() > self.max_s):
            return
        i = self.started
        self.started += 1
        task = self.loop.create_task(
            self.loop.create_connection(lambda: FakeAsterisk(self, i), "127.0.0.1", self.port)
        )
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[object]) -> None:
        if task.exception() is not None:
            self.bad += 1
            self._finish_one()

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def session_done(self, proto: FakeAsterisk) -> None:
        if proto.commands != COMMANDS_PER_SESSION:
            self.bad += 1
        self._finish_one()

    def _finish_one(self) -> None:
        self.finished += 1
        if self.finished == self.warmup:
            self.measuring = True
            self.t0 = time.perf_counter()
            self.counted_from = self.finished
        if self.finished >= self.started and (
            self.started >= self.total or (self.measuring and self._elapsed() > self.max_s)
        ):
            self.t1 = time.perf_counter()
            self.done.set()
            return
        self.start_one()

    async def run(self) -> dict[str, float]:
        for _ in range(min(self.concurrency, self.total)):
            self.start_one()
        await self.done.wait()
        sessions = self.finished - self.warmup
        rtt = sorted(self.rtt)
        return {
            "sessions": sessions,
            "bad": self.bad,
            "elapsed_s": self.t1 - self.t0,
            "rtt_p50_us": rtt[len(rtt) // 2] * 1e6 if rtt else 0.0,
            "rtt_p99_us": rtt[int(len(rtt) * 0.99)] * 1e6 if rtt else 0.0,
            "rtt_mean_us": statistics.fmean(rtt) * 1e6 if rtt else 0.0,
        }


def run_load(port: int, sessions: int, concurrency: int, warmup: int, max_s: float) -> None:
    pin(LOAD_CORE)
    import uvloop

    async def main() -> dict[str, float]:
        return await LoadGen(port, sessions, concurrency, warmup, max_s).run()

    t_cpu = time.process_time()
    result = uvloop.run(main())
    result["load_cpu_s"] = time.process_time() - t_cpu
    print(json.dumps(result), flush=True)


# ---- orchestration ----------------------------------------------------------------------
def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def measure(kind: str, loop_kind: str, args: argparse.Namespace) -> dict[str, float]:
    port_file = Path(f"/tmp/agi-bench-{os.getpid()}-{kind}-{loop_kind}.port")
    port_file.unlink(missing_ok=True)
    me = [sys.executable, __file__]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([*me, "--role", "server", "--kind", kind, "--loop", loop_kind,
                               "--port-file", str(port_file)], env=env)  # fmt: skip
    try:
        deadline = time.time() + 20
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{kind} server did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())
        cpu0 = cpu_times(server.pid)
        load = subprocess.run(
            [*me, "--role", "load", "--port", str(port), "--sessions", str(args.sessions),
             "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
             "--max-s", str(args.max_s)],
            env=env, capture_output=True, text=True, timeout=args.max_s + 120,
        )  # fmt: skip
        cpu1 = cpu_times(server.pid)
        if load.returncode != 0:
            raise RuntimeError(f"load generator failed: {load.stderr[-2000:]}")
        result = json.loads(load.stdout.strip().splitlines()[-1])
        # the server's CPU includes the warm-up sessions: charge it per session it served
        share = result["sessions"] / (result["sessions"] + args.warmup)
        result["server_user_s"] = (cpu1[0] - cpu0[0]) * share
        result["server_system_s"] = (cpu1[1] - cpu0[1]) * share
        result["server_cpu_s"] = result["server_user_s"] + result["server_system_s"]
        result["sessions_per_s"] = result["sessions"] / result["elapsed_s"]
        result["sessions_per_cpu_s"] = result["sessions"] / max(result["server_cpu_s"], 1e-9)
        result["server_core_util"] = result["server_cpu_s"] / result["elapsed_s"]
        return result
    finally:
        server.terminate()
        server.wait(10)
        port_file.unlink(missing_ok=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--role", choices=["bench", "server", "load"], default="bench")
    p.add_argument("--kind", choices=["ours", "panoramisk"], default="ours")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--port-file", type=Path)
    p.add_argument("--port", type=int)
    p.add_argument("--sessions", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--max-s", type=float, default=60.0)
    args = p.parse_args()
    if args.role == "server":
        run_server(args.kind, args.loop, args.port_file)
        return 0
    if args.role == "load":
        run_load(args.port, args.sessions, args.concurrency, args.warmup, args.max_s)
        return 0

    runs = [("ours", "uvloop"), ("panoramisk", "asyncio"), ("panoramisk", "uvloop")]
    results = {}
    print(f"{args.sessions} sessions x {COMMANDS_PER_SESSION} commands, {args.concurrency} "
          f"concurrent; server on core {SERVER_CORE}, load on core {LOAD_CORE}")  # fmt: skip
    print(f"{'server':<22}{'sess/s':>9}{'sess/cpu-s':>12}{'core%':>7}"
          f"{'rtt p50 us':>12}{'rtt p99 us':>12}{'bad':>5}{'load cpu%':>10}"
          f"{'user s':>8}{'sys s':>8}")  # fmt: skip
    for kind, loop_kind in runs:
        r = measure(kind, loop_kind, args)
        results[(kind, loop_kind)] = r
        print(f"{kind + ' (' + loop_kind + ')':<22}{r['sessions_per_s']:>9.0f}"
              f"{r['sessions_per_cpu_s']:>12.0f}{100 * r['server_core_util']:>7.0f}"
              f"{r['rtt_p50_us']:>12.0f}{r['rtt_p99_us']:>12.0f}{r['bad']:>5.0f}"
              f"{100 * r['load_cpu_s'] / r['elapsed_s']:>10.0f}"
              f"{r['server_user_s']:>8.2f}{r['server_system_s']:>8.2f}", flush=True)  # fmt: skip
    ours = results[("ours", "uvloop")]
    for loop_kind in ("asyncio", "uvloop"):
        pano = results[("panoramisk", loop_kind)]
        print(f"ours / panoramisk({loop_kind}): "
              f"{ours['sessions_per_s'] / pano['sessions_per_s']:.2f}x sessions/s, "
              f"{ours['sessions_per_cpu_s'] / pano['sessions_per_cpu_s']:.2f}x sessions per "
              f"server CPU second; p99 rtt ours {ours['rtt_p99_us']:.0f} us, "
              f"panoramisk {pano['rtt_p99_us']:.0f} us")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
