"""``hotline config check FILE`` and ``hotline config render FILE OUTDIR``; the admins'
lifecycle of the running config (``admin/``, docs/admin.md)::

    hotline config diff FILE                      # YAML and Asterisk diffs against what runs
    hotline config apply FILE --base N --comment "…"   # validate, reload what changed, record
    hotline config history [--json]               # applied versions, newest first
    hotline config show N                         # one version's YAML (secrets hidden)
    hotline config rollback N --base M [--comment "…"]

``--config`` names the running config (default ``$HOTLINE_CONFIG`` or hotline.yaml),
``--instance``/``--run-dir`` its stack.  Exit 1: the file does not validate (each field and
line printed, nothing changed); 3: ``--base`` is not the running version (another apply
landed: diff again); 4: the reload failed (the previous config runs again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from admin.lifecycle import (
    ApplyFailed,
    Lifecycle,
    NoSuchVersion,
    Preview,
    StaleBase,
    mask,
    open_lifecycle,
    secrets_of,
    unmask,
)
from admin.versions import Version
from hotline.config import ConfigError, HotlineConfig, load_config, parse_config


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

    from cli.commands import add_common

    diff = sub.add_parser("diff", help="what applying FILE would change (YAML and Asterisk)")
    diff.add_argument("file")
    apply = sub.add_parser("apply", help="validate FILE, reload what changed, keep a version")
    apply.add_argument("file")
    for p in (apply,):
        p.add_argument("--base", type=int, required=True, help="the version FILE was based on")
        p.add_argument("--comment", required=True, help="why (kept with the version)")
    history = sub.add_parser("history", help="applied versions, newest first")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one version's YAML (secrets hidden)")
    show.add_argument("version", type=int)
    rollback = sub.add_parser("rollback", help="apply an old version's text as a new version")
    rollback.add_argument("version", type=int)
    rollback.add_argument("--base", type=int, required=True, help="the version running now")
    rollback.add_argument("--comment", default="")
    for p, func in ((diff, diff_cmd), (apply, apply_cmd), (history, history_cmd),
                    (show, show_cmd), (rollback, rollback_cmd)):  # fmt: skip
        add_common(p)
        p.set_defaults(func=func)


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


def _who() -> str:
    import getpass

    return "cli:" + (os.environ.get("SUDO_USER") or getpass.getuser())


def _lifecycle(args: argparse.Namespace) -> Lifecycle:
    return open_lifecycle(args.config, args.instance, args.run_dir)


def _print_preview(preview: Preview, secrets: dict[str, str]) -> None:
    shown = preview.as_dict(secrets)
    print(shown["yaml_diff"] or "(no change to the YAML)", end="")
    for name, text in preview.asterisk_diffs.items():
        print(f"--- generated {name} ---")
        print(mask(text, secrets), end="")
    print(f"asterisk reloads: {', '.join(preview.commands) or 'none'}")
    print(f"services reread: {', '.join(preview.services) or 'none'}")
    for item in preview.restart_needed:
        print(f"needs a restart: {item}")


def _report(version: Version, preview: Preview, out: dict[str, str], secrets: dict) -> int:
    _print_preview(preview, secrets)
    running = {
        "running": version.summary(),
        "reload": {k: mask(v, secrets) for k, v in out.items()},
    }
    print(json.dumps(running, ensure_ascii=False, indent=2))
    return 0


def _lifecycle_errors(func: Callable[[argparse.Namespace], int]) -> Callable:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except StaleBase as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 3
        except ApplyFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 4
        except (NoSuchVersion, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _read(path: str) -> str:
    from hotline import safe_yaml

    try:
        return safe_yaml.read_text(path)
    except safe_yaml.YamlRefused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigError(path, [("<file>", line, str(exc.problem))]) from None


@_lifecycle_errors
def diff_cmd(args: argparse.Namespace) -> int:
    life = _lifecycle(args)
    now = life.running()
    secrets = life.secrets()
    preview = life.preview(unmask(_read(args.file), secrets), now)
    print(f"running: version {now.id}")
    _print_preview(preview, secrets)
    return 0


@_lifecycle_errors
def apply_cmd(args: argparse.Namespace) -> int:
    life = _lifecycle(args)
    secrets = life.secrets()
    text = unmask(_read(args.file), secrets)
    return _report(*life.apply(text, args.base, _who(), args.comment), secrets)


@_lifecycle_errors
def rollback_cmd(args: argparse.Namespace) -> int:
    life = _lifecycle(args)
    secrets = life.secrets()
    return _report(*life.rollback(args.version, args.base, _who(), args.comment), secrets)


@_lifecycle_errors
def history_cmd(args: argparse.Namespace) -> int:
    life = open_lifecycle(args.config, args.instance, args.run_dir, stack=False)
    running = life.running()
    versions = life.store.history(max(1, min(args.limit, 1000)))
    if args.json:
        out = [{**v.summary(), "running": v.id == running.id} for v in versions]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.created))
        mark = "*" if v.id == running.id else " "
        print(f"{mark}{v.id:>5}  {when}  {v.kind:<8}  {v.who:<16}  {v.comment}")
    return 0


@_lifecycle_errors
def show_cmd(args: argparse.Namespace) -> int:
    life = open_lifecycle(args.config, args.instance, args.run_dir, stack=False)
    version = life.store.get(args.version)
    print(mask(version.text, {**life.secrets(), **secrets_of(_config_or_none(version.text))}))
    return 0


def _config_or_none(text: str) -> HotlineConfig | None:
    try:
        return parse_config(text)
    except ConfigError:
        return None
