"""Callbacks through real Asterisk: agent ready → the callback's INVITE at the caller's phone,
and → the reserved agent's INVITE once the caller answered and heard the greeting.

    nice -n 10 .venv/bin/python bench/acd_callback_latency.py --calls 5

One stack (as ``bench/acd_ready_to_invite.py``, with ``acd.callback`` on, offered at once), the
agents' sipp phones and a sipp phone at the carrier's address (the called-back caller).  Per
call: agent 1002 not ready; a caller presses 2 (公积金), 1 when offered, 1 to confirm the
number, and is hung up keeping the place; t0 = the ``ready`` command appended to
``acd:commands``; t1 = the INVITE at the carrier phone (the router reserved the agent, then
sent AMI Originate); t2 = the INVITE at the agent's phone (after the answer and the greeting
"您好，这里是12345回拨，正在为您接通坐席").  Times from sipp's message traces (same host clock).
Prints p50/max per step (a handful of calls: each takes about 25 s of IVR and dialogue).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from acd_ready_to_invite import (  # noqa: E402
    AGENT,
    Bench,
    config_data,
    invite_times,
    on_stack,
    wait_until,
)

from acd.policy import AgentState, Reason, Refused  # noqa: E402
from cli.commands.call import place_call  # noqa: E402
from hotline.config import HotlineConfig  # noqa: E402
from runtime.stack import Stack  # noqa: E402
from testphones.sipp import (  # noqa: E402
    CallerSpec,
    key_steps,
    prepare_media,
    start_phone,
    stop_phone,
)

KEYS = [(2.0, "2"), (10.0, "1"), (4.0, "1"), (4.0, "1")]


def callback_config(offset: int, tmp: Path) -> dict:
    data = config_data(offset, tmp)
    data["acd"].update(announce_s=3, wrapup_s=1)
    data["acd"]["callback"] = {"enabled": True, "offer_after_s": 0, "ring_s": 10}
    return data


def state(bench: Bench) -> str:
    try:
        return bench.engine.agent_state(AGENT)[0]
    except Refused:
        return AgentState.LOGGED_OUT


async def one_callback(bench: Bench, carrier_log: Path, n: int) -> tuple[float, float]:
    await wait_until(lambda: state(bench) == AgentState.READY, 30, "agent ready")
    bench.command("not_ready", Reason.BREAK)
    await wait_until(lambda: state(bench) == AgentState.NOT_READY, 30, "not ready")
    plan, media, media_s = prepare_media(key_steps(KEYS), bench.tmp / "media" / str(n))
    spec = CallerSpec.into(bench.config, caller=f"1390000{n:04d}", digits=plan,
                           hold_s=20.0, media_pcap=media, media_s=media_s)  # fmt: skip
    result = await place_call(bench.config, spec, Path(tempfile.mkdtemp(dir=bench.tmp)), 90.0)
    call_id = result["linkedid"]
    if bench.engine.callback_tries(call_id) != 0:
        raise RuntimeError(f"call {n}: no callback registered")
    t0 = time.time()
    bench.command("ready")
    await wait_until(lambda: any(t >= t0 for t in invite_times(carrier_log)), 20, "callback")
    t1 = min(t for t in invite_times(carrier_log) if t >= t0)
    await wait_until(lambda: any(t >= t1 for t in invite_times(bench.log)), 20, "agent INVITE")
    t2 = min(t for t in invite_times(bench.log) if t >= t1)
    await wait_until(lambda: bench.engine.call_state(call_id) == ("on_call", AGENT), 10, "bridge")
    bench.stack.cli("channel request hangup all")
    await wait_until(lambda: bench.engine.call_state(call_id) is None, 15, "hang-up")
    return t1 - t0, t2 - t0


async def measure(config: HotlineConfig, stack: Stack, phones, tmp: Path, calls: int) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(2)
    bench = Bench(config, stack, phones, tmp)
    carrier = config.trunks.carrier
    phone = start_phone("carrier", carrier.host, carrier.port, tmp / "carrier")
    bench.command("login")
    to_callback, to_agent = [], []
    try:
        for n in range(calls):
            a, b = await one_callback(bench, phone.workdir / "carrier.messages.log", n)
            to_callback.append(1000 * a)
            to_agent.append(1000 * b)
    finally:
        stop_phone(phone)
    print("callbacks (real Asterisk 22, loopback): agent ready →")
    for name, ms in (("INVITE at the caller", to_callback), ("INVITE at the agent", to_agent)):
        print(f"  {name:<22} n={len(ms)}  p50 {statistics.median(ms):7.1f} ms  "
              f"max {max(ms):7.1f} ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument(
        "--offset",
        type=int,
        default=int(os.environ.get("HOTLINE_ITEST_PORT_OFFSET", "10000")) + 3500,
        help="port offset (default: the integration tests' callback slot; not at the same time)",
    )
    parser.add_argument("--instance", default="bench-callback")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="acd-callback-"))
    on_stack(callback_config(args.offset, tmp), tmp, args.instance,
             lambda config, stack, phones: asyncio.run(
                 measure(config, stack, phones, tmp, args.calls)))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
