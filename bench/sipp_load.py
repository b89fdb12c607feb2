"""sipp load through the whole stack: real Asterisk + FastAGI IVR, callers that stay in the IVR.

Every caller arrives from the carrier address at ``--rate`` calls/s, is answered, enters the
FastAGI IVR (greeting, menu), listens for ``--hold`` seconds and hangs up.  Printed: set-up
rate achieved, INVITE→200 time, peak concurrent calls in the IVR (Asterisk channels whose
application is AGI, polled through AMI ``core show channels concise``), the FastAGI server's
session counters, the CPU FastAGI and Asterisk used during the run (user + system, cores),
and failed calls (sipp's statistics).  Every call comes from its own number.

    sudo .venv/bin/python bench/sipp_load.py                  # own "bench" instance, ports +30000
    sudo .venv/bin/python bench/sipp_load.py --calls 3000 --rate 100 --hold 8  # past the knee
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


def caller_numbers(calls: int) -> tuple[str, ...]:
    """One caller number per call (1370000000x …): a load of many callers.  One number for
    every call would be one caller ringing ``calls`` times, whom the 第二十九条 throttle warns
    from the 6th call and then suspends: the figures would not be "greeting and menu"."""
    return tuple(f"137{i:08d}" for i in range(calls))


def cpu_times(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of process ``pid`` (/proc/<pid>/stat), None if gone."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_used(before: tuple | None, after: tuple | None, elapsed: float) -> dict | None:
    """CPU a process used between two :func:`cpu_times` samples: user, system, cores."""
    if before is None or after is None:
        return None
    user, system = after[0] - before[0], after[1] - before[1]
    return {
        "user_s": round(user, 2),
        "system_s": round(system, 2),
        "cores": round((user + system) / max(elapsed, 1e-9), 3),
    }


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
    ast_pid = status["asterisk"]["pid"] if status else None
    agi_log = Path(status["fastagi"]["log"]) if status else None
    before = fastagi_stats(agi_log, agi_pid) if agi_log else None
    spec = CallerSpec.into(
        config,
        callers=caller_numbers(args.calls),
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
    cpu0 = {"fastagi": cpu_times(agi_pid), "asterisk": cpu_times(ast_pid)}
    timeout = args.calls / args.rate + args.hold + 60
    result = await run_caller_async(spec, work, timeout)
    elapsed = time.monotonic() - started
    cpu1 = {"fastagi": cpu_times(agi_pid), "asterisk": cpu_times(ast_pid)}
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
        "cpu_during_run": {k: cpu_used(cpu0[k], cpu1[k], elapsed) for k in cpu0},
        "workdir": str(work),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=2400, help="calls to place (default 2400)")
    p.add_argument("--rate", type=float, default=100.0, help="calls per second (default 100)")
    p.add_argument("--hold", type=float, default=6.0, help="seconds each caller listens")
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
    for name, used in report["cpu_during_run"].items():
        if used:
            print(
                f"{name}: {used['cores']:.2f} cores over the run "
                f"({used['user_s']:.1f} s user + {used['system_s']:.1f} s system)"
            )
    return 0 if s["failed"] == 0 and s["successful"] == args.calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
