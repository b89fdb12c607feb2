"""``hotline up``, ``hotline down`` and ``hotline status`` for one instance."""

from __future__ import annotations

import argparse
import json
import sys

from cli.commands import add_common
from hotline.config import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="build what is missing and start the stack")
    add_common(up)
    up.add_argument(
        "--demo-agents",
        action="store_true",
        help="also start sipp phones for every agent and the emergency trunk",
    )
    up.add_argument(
        "--require-fastagi", action="store_true", help="fail if the FastAGI server cannot start"
    )
    up.add_argument(
        "--no-speech", action="store_true", help="do not start the speech (AudioSocket) service"
    )
    up.set_defaults(func=up_cmd)
    down = subparsers.add_parser("down", help="stop every process of the instance")
    add_common(down)
    down.set_defaults(func=down_cmd)
    status = subparsers.add_parser("status", help="the instance's processes as JSON")
    add_common(status)
    status.set_defaults(func=status_cmd)
    reload = subparsers.add_parser("reload", help="re-render the config and reload Asterisk")
    add_common(reload)
    reload.set_defaults(func=reload_cmd)


def _stack(args: argparse.Namespace):  # -> Stack (imported lazily: keeps `--help` fast)
    from runtime import Stack

    return Stack(args.config, instance=args.instance, run_dir=args.run_dir)


def up_cmd(args: argparse.Namespace) -> int:
    from runtime import StackError, rootfs

    if not rootfs.is_complete(rootfs.rootfs_path()):
        print(
            f"building the Asterisk rootfs {rootfs.rootfs_path()} with mmdebstrap "
            "(about a minute, once)...",
            file=sys.stderr,
            flush=True,
        )
    try:
        stack = _stack(args)
        status = stack.up(require_fastagi=args.require_fastagi, speech=not args.no_speech)
        if args.demo_agents:
            status["demo_phones"] = stack.start_demo_phones()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ast, redis, agi = status["asterisk"], status["redis"], status["fastagi"]
    print(f"instance {status['instance']} up (rootfs {status['rootfs']})")
    print(f"  asterisk pid {ast['pid']}: SIP {ast['sip']}, AMI {ast['ami']}")
    print(f"    config {ast['config_dir']}, log {ast['log']}")
    print(f"  redis    pid {redis['pid']}: {redis['listen']}")
    if agi["running"]:
        print(f"  fastagi  pid {agi['pid']}: {agi['listen']} (log {agi['log']})")
    elif not agi["available"]:
        print("  fastagi  not available (agi_scripts has no __main__): calls fail open")
    else:
        print(f"  fastagi  NOT running, see {agi['log']}: calls fail open to the general seat")
    speech = status["speech"]
    if speech["running"]:
        print(f"  speech   pid {speech['pid']}: {speech['listen']} (AudioSocket)")
    elif args.no_speech:
        print("  speech   not started (--no-speech): callers use keys or reach a person")
    else:
        print(f"  speech   not running ({speech['log']}): callers use keys or reach a person")
    console = status.get("console", {})
    if console.get("running"):
        print(f"  console  pid {console['pid']}: {console['url']} (agent feed, drafts, API)")
    elif console.get("enabled"):
        print(f"  console  not running ({console['log']})")
    for phone in status.get("demo_phones", []):
        print(f"  phone    {phone}")
    timings = status.get("timings", {})
    if timings.get("rootfs_s", 0) > 1:
        print(f"  rootfs ready in {timings['rootfs_s']:.1f} s")
    if "asterisk_ready_s" in timings:
        print(f"  asterisk start-to-ready {timings['asterisk_ready_s']:.2f} s")
    return 0


def down_cmd(args: argparse.Namespace) -> int:
    try:
        stopped = _stack(args).down()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps({"instance": args.instance, "stopped": stopped}))
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    try:
        status = _stack(args).status()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2, ensure_ascii=False))
    return 0


def reload_cmd(args: argparse.Namespace) -> int:
    from runtime import StackError

    try:
        out = _stack(args).reload()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0
