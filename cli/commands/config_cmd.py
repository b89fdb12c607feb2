"""``hotline config check FILE`` and ``hotline config render FILE OUTDIR``."""

from __future__ import annotations

import argparse
import sys

from hotline.config import ConfigError, HotlineConfig, load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate or render a hotline config")
    sub = parser.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser("check", help="validate FILE; print each problem with file:line")
    check.add_argument("file")
    check.set_defaults(func=check_cmd)
    render = sub.add_parser("render", help="render the Asterisk config of FILE into OUTDIR")
    render.add_argument("file")
    render.add_argument("outdir")
    render.add_argument("--instance", default="demo")
    render.set_defaults(func=render_cmd)


def summary(config: HotlineConfig) -> str:
    """A short human summary of a valid config."""
    from acd.queues import queue_name

    lines = [
        f"{config.hotline.name} ({config.hotline.number}), city {config.city.name}",
        f"SIP udp {config.sip.host}:{config.sip.port}; AMI {config.ami.host}:{config.ami.port}; "
        f"FastAGI {config.agi.host}:{config.agi.port}; Redis {config.redis.host}:"
        f"{config.redis.port}",
        f"carrier {config.trunks.carrier.host}:{config.trunks.carrier.port}; emergency trunk "
        f"{config.trunks.emergency.host}:{config.trunks.emergency.port} "
        f"(lines {', '.join(sorted(config.emergency.lines))})",
        f"{len(config.seats)} seats, {len(config.agents)} agents, menus: {', '.join(config.menus)}",
    ]
    for seat in config.seats:
        members = [a.endpoint for a in config.agents if seat.id in a.seats]
        warn = "  (no agent: callers wait until one is added)" if not members else ""
        lines.append(f"  {queue_name(seat.id)} {seat.name}: {', '.join(members) or '-'}{warn}")
    return "\n".join(lines)


def check_cmd(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    print(summary(config))
    return 0


def render_cmd(args: argparse.Namespace) -> int:
    from asterisk_conf.render import render

    try:
        config = load_config(args.file)
        out = render(config, args.outdir, args.instance)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    files = sorted(p.name for p in out.iterdir())
    print(f"rendered {len(files)} files into {out}: {' '.join(files)}")
    return 0
