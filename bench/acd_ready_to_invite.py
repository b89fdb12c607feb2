"""Agent ready → the waiting caller's INVITE at the agent's phone, through real Asterisk.

    nice -n 10 .venv/bin/python bench/acd_ready_to_invite.py --calls 12

One stack (hotline.yaml, ports moved by ``--offset``, ``acd.mode: router``, no greeting),
sipp phones for every agent.  Two rounds of ``--calls`` measurements, one caller at a time,
pressing 2 (公积金) and waiting while agent 1002 is not available:

- **router**: the caller waits in the router's waiting room (the engine shows it queued);
  t0 = the ``ready`` command appended to ``acd:commands`` (as the console or phone sends it);
  the router applies it, the engine offers the call, AMI Setvar + Redirect, ``Dial``.
- **app_queue**: the router is stopped (the dialplan's stale heartbeat sends callers to the
  seat's app_queue queue); both members of ``seat_gjj`` are paused and the caller has joined
  (``QueueCallerJoin``); t0 = AMI ``QueuePause Paused=false`` of agent 1002.

t1 = the INVITE's time in the agent phone's sipp message trace (sipp's own clock: the same
host clock as t0).  Prints p50/p95/p99/max per round and the ratio of the p95s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml
from redis import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from acd.commands import STREAM, AgentCommand  # noqa: E402
from acd.engine import RedisEngine  # noqa: E402
from acd.policy import AgentState, Reason, Refused  # noqa: E402
from cli.commands.call import place_call  # noqa: E402
from hotline import safe_yaml  # noqa: E402
from hotline.ami import AmiClient  # noqa: E402
from hotline.config import HotlineConfig, load_config  # noqa: E402
from runtime.stack import Stack  # noqa: E402
from testphones.sipp import CallerSpec, key_steps, offset_config, prepare_media, start_phones  # noqa: E402

AGENT, OTHER = "1002", "1009"
QUEUE = "seat_gjj"
SEPARATOR = "-" * 47 + " "
"""What starts each message in sipp's trace, followed by the local date and time."""


def config_data(offset: int, tmp: Path) -> dict:
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), offset, tmp)
    data["menus"]["main"]["prompts"] = ["main-menu"]
    data.setdefault("speech", {})["mode"] = "off"
    data["throttle"] = {**data.get("throttle", {}), "enabled": False}
    data["acd"] = {**data.get("acd", {}), "mode": "router", "wrapup_s": 0, "stale_s": 2}
    return data


def invite_times(log: Path) -> list[float]:
    """Unix times of the INVITEs received, from a sipp ``-trace_msg`` file."""
    out = []
    try:
        blocks = log.read_text(errors="replace").split(SEPARATOR)[1:]
    except OSError:
        return out
    for block in blocks:
        stamp, _, rest = block.partition("\n")
        head, _, body = rest.partition("\n\n")
        if "message received" in head and body.lstrip().startswith("INVITE "):
            out.append(datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return out


async def wait_until(predicate, timeout_s: float, what: str, step_s: float = 0.005) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(step_s)
    raise RuntimeError(f"timed out waiting for {what}")


class Bench:
    def __init__(self, config: HotlineConfig, stack: Stack, phones, tmp: Path) -> None:  # type: ignore[no-untyped-def]
        self.config, self.stack, self.phones, self.tmp = config, stack, phones, tmp
        self.redis = Redis(**config.redis.client_kwargs())  # type: ignore[arg-type]
        self.engine = RedisEngine(self.redis, config.acd_settings())
        self.log = phones.agent(AGENT).workdir / f"agent{AGENT}.messages.log"
        self.n = 0

    def command(self, op: str, reason: Reason | None = None) -> None:
        cmd = AgentCommand(op=op, agent_id=AGENT, reason=reason, by="bench")  # type: ignore[arg-type]
        self.redis.xadd(STREAM, cmd.fields())

    def caller(self) -> asyncio.Task:
        self.n += 1
        plan, media, media_s = prepare_media(key_steps("2", 2.0), self.tmp / "media" / str(self.n))
        spec = CallerSpec.into(self.config, caller=f"1390000{self.n:04d}", digits=plan,
                               hold_s=10.0, media_pcap=media, media_s=media_s)  # fmt: skip
        work = Path(tempfile.mkdtemp(dir=self.tmp))
        return asyncio.create_task(place_call(self.config, spec, work, 60.0))

    async def invite_after(self, t0: float) -> float:
        await wait_until(lambda: any(t >= t0 - 0.001 for t in invite_times(self.log)), 10, "INVITE")
        return min(t for t in invite_times(self.log) if t >= t0 - 0.001) - t0

    async def router_round(self, calls: int) -> list[float]:
        def state() -> str:
            try:
                return self.engine.agent_state(AGENT)[0]
            except Refused:
                return AgentState.LOGGED_OUT

        if state() == AgentState.LOGGED_OUT:
            self.command("login")
        out = []
        for _ in range(calls):
            await wait_until(
                lambda: state() in (AgentState.READY, AgentState.NOT_READY), 30, "agent free"
            )
            self.command("not_ready", Reason.BREAK)
            await wait_until(lambda: state() == AgentState.NOT_READY, 10, "not ready")
            task = self.caller()
            await wait_until(lambda: self.engine.waiting("gjj") >= 1, 40, "caller queued", 0.002)
            t0 = time.time()
            self.command("ready")
            out.append(await self.invite_after(t0))
            await task
        return out

    async def queue_round(self, calls: int) -> list[float]:
        self.stack.stop_acd()
        await asyncio.sleep(self.config.acd.stale_s + 1.5)
        a = self.config.ami
        ami = await AmiClient.connect(a.host, a.port, a.username, a.secret)
        out = []
        try:
            for _ in range(calls):
                for agent in (AGENT, OTHER):
                    await ami.action(
                        "QueuePause", Interface=f"PJSIP/agent{agent}", Queue=QUEUE, Paused="true"
                    )
                events = ami.subscribe()
                task = self.caller()
                await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin", 40, events)
                ami.unsubscribe(events)
                await asyncio.sleep(0.3 + (self.n % 10) / 10)  # unpause anywhere in the 1 s cycle
                t0 = time.time()
                await ami.action(
                    "QueuePause", Interface=f"PJSIP/agent{AGENT}", Queue=QUEUE, Paused="false"
                )
                out.append(await self.invite_after(t0))
                await task
        finally:
            for agent in (AGENT, OTHER):
                await ami.action(
                    "QueuePause", Interface=f"PJSIP/agent{agent}", Queue=QUEUE, Paused="false"
                )
            await ami.close()
        return out


def summary(name: str, ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    row = {"p50": statistics.median(ms), "p95": q[94], "p99": q[98], "max": max(ms)}
    print(f"{name:<10} n={len(ms):<3} " + "  ".join(f"{k} {v:7.1f} ms" for k, v in row.items()))
    return row


async def measure(config: HotlineConfig, stack: Stack, phones, tmp: Path, calls: int) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(2)
    bench = Bench(config, stack, phones, tmp)
    router = [1000 * x for x in await bench.router_round(calls)]
    queue = [1000 * x for x in await bench.queue_round(calls)]
    print("agent ready → INVITE at the agent's sipp phone (real Asterisk 22, loopback)")
    r, q = summary("router", router), summary("app_queue", queue)
    print(f"router p95 / app_queue p95 = {r['p95'] / q['p95']:.2f}; "
          f"router p50 / app_queue p50 = {r['p50'] / q['p50']:.2f}")  # fmt: skip


def on_stack(data: dict, tmp: Path, instance: str, run) -> None:  # type: ignore[no-untyped-def]
    """Write ``data`` as the stack's config, bring the stack and the agents' phones up, call
    ``run(config, stack, phones)``, and take both down again whatever happens."""
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    config = load_config(path)
    stack = Stack(path, instance=instance, run_dir=tmp / "run")
    phones = None
    try:
        stack.up(require_fastagi=True, speech=False)
        phones = start_phones(config, tmp / "phones")
        run(config, stack, phones)
    finally:
        if phones is not None:
            phones.stop()
        stack.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument(
        "--offset",
        type=int,
        default=int(os.environ.get("HOTLINE_ITEST_PORT_OFFSET", "10000")) + 2250,
        help="port offset (default: the integration tests' acd slot; not at the same time)",
    )
    parser.add_argument("--instance", default="bench-acd")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="acd-ready-"))
    on_stack(config_data(args.offset, tmp), tmp, args.instance,
             lambda config, stack, phones: asyncio.run(
                 measure(config, stack, phones, tmp, args.calls)))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
