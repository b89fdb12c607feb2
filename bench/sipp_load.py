"""sipp load through the whole stack: real Asterisk + FastAGI IVR, callers that stay in the IVR.

Every caller arrives from the carrier address at ``--rate`` calls/s, is answered, enters the
FastAGI IVR (greeting, menu), listens for ``--hold`` seconds and hangs up.  Printed: set-up
rate achieved, INVITE→200 time, peak concurrent calls in the IVR (Asterisk channels whose
application is AGI, polled through AMI ``core show channels concise``), the FastAGI server's
session counters, and failed calls (sipp's statistics).

    sudo .venv/bin/python bench/sipp_load.py                  # own "bench" instance, ports +30000
    sudo .venv/bin/python bench/sipp_load.py --calls 6000 --rate 100 --hold 8
    sudo .venv/bin/python bench/sipp_load.py --config hotline.yaml --instance demo  # running stack

Targets on the 2-core dev machine: >= 100 calls/s, >= 600 concurrent calls in the IVR, 0 failed.
Loopback only; bounded by --calls and a time-out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hotline import safe_yaml  # noqa: E402
from hotline.ami import AmiClient, AmiError  # noqa: E402
from hotline.config import HotlineConfig, load_config  # noqa: E402
from testphones.sipp import CallerSpec, offset_config, run_caller_async  # noqa: E402


def raise_nofile() -> int:
    """Lift the open-files limit to the hard limit (sipp inherits it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


async def sample_ivr(config: HotlineConfig, stop: asyncio.Event, every_s: float) -> list[tuple]:
    """(t, channels, channels in AGI) every ``every_s`` until ``stop``."""
    ami = config.ami
    client = await AmiClient.connect(ami.host, ami.port, ami.username, ami.secret)
    await client.action("Events", EventMask="off")  # Asterisk need not queue events for us
    samples: list[tuple[float, int, int]] = []
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            try:
                out = await client.command("core show channels concise", timeout=10)
            except AmiError:  # an overloaded Asterisk answers late: skip this sample
                if client.closed:
                    break
                continue
            lines = [ln for ln in out.splitlines() if ln.count("!") >= 6]
            in_agi = sum(1 for ln in lines if ln.split("!")[5] == "AGI")
            samples.append((round(time.monotonic() - t0, 2), len(lines), in_agi))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
    finally:
        await client.close()
    return samples


def fastagi_stats(log: Path, pid: int | None, timeout_s: float = 5.0) -> dict | None:
    if not pid:
        return None
    size = log.stat().st_size if log.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(log, "rb") as fh:
            fh.seek(size)
            text = fh.read().decode(errors="replace")
        if " stats {" in text:
            return json.loads(text.rsplit(" stats ", 1)[1].splitlines()[0])
        time.sleep(0.1)
    return None


async def bench(args: argparse.Namespace, config: HotlineConfig, stack) -> dict:  # type: ignore[no-untyped-def]
    status = stack.status() if stack is not None else None
    agi_pid = status["fastagi"]["pid"] if status else None
    agi_log = Path(status["fastagi"]["log"]) if status else None
    before = fastagi_stats(agi_log, agi_pid) if agi_log else None
    spec = CallerSpec.into(
        config,
        caller="13700000000",
        name="load",
        hold_s=args.hold,
        calls=args.calls,
        rate=args.rate,
        limit=args.limit,
        trace_errors=False,
    )
    work = Path(tempfile.mkdtemp(prefix="sipp-load-"))
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_ivr(config, stop, 1.0))
    started = time.monotonic()
    timeout = args.calls / args.rate + args.hold + 60
    result = await run_caller_async(spec, work, timeout)
    elapsed = time.monotonic() - started
    stop.set()
    samples = await sampler
    await asyncio.sleep(2.0)  # the last sessions end after their channel hangs up
    after = fastagi_stats(agi_log, agi_pid) if agi_log else None
    peak = max(samples, key=lambda s: s[2]) if samples else (0, 0, 0)
    stats = result.as_dict()
    stats.pop("logs")
    report = {
        "calls": args.calls,
        "target_rate_cps": args.rate,
        "hold_s": args.hold,
        "setup_rate_cps": round(result.calls_created / max(elapsed - args.hold, 1e-9), 1),
        "elapsed_s": round(elapsed, 1),
        "sipp": stats,
        "invite_to_200_ms_avg": result.response_time_ms,
        "peak_channels": max((s[1] for s in samples), default=0),
        "peak_in_ivr": peak[2],
        "peak_at_s": peak[0],
        "samples": len(samples),
        "fastagi_sessions": (after["sessions"] - before["sessions"]) if before and after else None,
        "fastagi_failed": (after["failed"] - before["failed"]) if before and after else None,
        "fastagi_active_after": after["active"] if after else None,
        "workdir": str(work),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=3000, help="calls to place (default 3000)")
    p.add_argument("--rate", type=float, default=100.0, help="calls per second (default 100)")
    p.add_argument("--hold", type=float, default=8.0, help="seconds each caller listens")
    p.add_argument("--limit", type=int, default=3000, help="sipp's cap on concurrent calls")
    p.add_argument("--config", help="use this running stack instead of starting one")
    p.add_argument("--instance", default="bench")
    p.add_argument("--run-dir", type=Path, default=None, help="the running stack's run dir")
    p.add_argument("--offset", type=int, default=30000, help="port offset for the own instance")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: Asterisk runs in a chroot and sipp sends raw RTP", file=sys.stderr)
        return 2
    if not 1 <= args.calls <= 100_000 or not 0 < args.rate <= 1000 or not 0 < args.hold <= 120:
        print("bounds: 1..100000 calls, rate 0..1000/s, hold 0..120 s", file=sys.stderr)
        return 2
    nofile = raise_nofile()
    from runtime.stack import Stack

    own = args.config is None
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    if own:
        base = safe_yaml.load_file(REPO / "hotline.yaml")
        path = tmp / f"{args.instance}.yaml"
        data = offset_config(base, args.offset, tmp)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    else:
        path = Path(args.config)
    config = load_config(path)
    stack = Stack(path, instance=args.instance, run_dir=tmp / "run" if own else args.run_dir)
    try:
        if own:
            stack.up(require_fastagi=True)
        report = asyncio.run(bench(args, config, stack))
    finally:
        if own:
            stack.down()
    report["open_files_limit"] = nofile
    print(json.dumps(report, indent=2, ensure_ascii=False))
    s = report["sipp"]
    print(
        f"\n{report['calls']} calls at {args.rate:g}/s (achieved {report['setup_rate_cps']}/s): "
        f"peak {report['peak_in_ivr']} concurrent in the IVR ({report['peak_channels']} channels), "
        f"{s['successful']} successful, {s['failed']} failed, "
        f"INVITE->200 avg {report['invite_to_200_ms_avg']} ms"
    )
    return 0 if s["failed"] == 0 and s["successful"] == args.calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
