"""``hotline calls list [--since …] [--seat …]`` and ``hotline calls show ID``: the call
records (``calls.store``), as a readable table or JSON (``--json``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from calls.store import SqliteCallStore
from cli.commands import default_config
from hotline.call import CallRecord
from hotline.config import ConfigError, load_config

COLUMNS = ("call id", "started", "ended", "caller", "outcome", "seat", "path", "agent")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calls", help="list and show call records")
    sub = parser.add_subparsers(dest="calls_command", required=True)
    ls = sub.add_parser("list", help="calls, newest first")
    ls.add_argument("--since", type=when, help="ISO date/time, or 30m / 2h / 7d ago")
    ls.add_argument("--until", type=when, help="ISO date/time, or 30m / 2h / 7d ago")
    ls.add_argument("--seat", help="seat id (gjj, zonghe …)")
    ls.add_argument(
        "--outcome",
        help="agent, self_served, queue, emergency, notice, hangup, fallback, abandoned",
    )
    ls.add_argument("--caller-hash", help="the caller's keyed hash (as in tickets)")
    ls.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="one call's record")
    show.add_argument("call_id")
    for p in (ls, show):
        p.add_argument("--config", default=default_config(), help="hotline YAML config")
        p.add_argument("--store", type=Path, help="record store file (default: calls.path)")
        p.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(func=list_cmd)
    show.set_defaults(func=show_cmd)


def when(text: str) -> float:
    """``2026-12-02``, ``2026-12-02T10:00`` (local time) or ``30m``/``2h``/``7d`` ago."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return (datetime.now() - timedelta(seconds=int(text[:-1]) * units[text[-1]])).timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date/time or 30m/2h/7d: {text!r}") from None


def _store(args: argparse.Namespace) -> SqliteCallStore | None:
    if args.store is not None:
        path = args.store
    else:
        try:
            path = Path(load_config(args.config).calls.path)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return None
    if not path.exists():
        print(f"no call records at {path}", file=sys.stderr)
        return None
    return SqliteCallStore(path)


def _time(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%m-%d %H:%M:%S") if t else "-"


def row(rec: CallRecord) -> tuple[str, ...]:
    path = rec.ivr.ivr_path if rec.ivr else ""
    agents = ",".join(str(a.get("agent")) for a in rec.agents)
    return (rec.call_id, _time(rec.started_at), _time(rec.ended_at), rec.caller.masked,
            rec.outcome, rec.seat or "-", path or "-", agents or "-")  # fmt: skip


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [COLUMNS, *rows])  # fmt: skip


def list_cmd(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 1

    async def go() -> list[CallRecord]:
        try:
            return await store.list(since=args.since, until=args.until, seat=args.seat,
                                    outcome=args.outcome, caller_hash=args.caller_hash,
                                    limit=args.limit)  # fmt: skip
        finally:
            await store.close()

    records = asyncio.run(go())
    if args.json:
        print(json.dumps([r.to_json() for r in records], ensure_ascii=False, indent=1))
    else:
        print(table([row(r) for r in records]))
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 1

    async def go() -> CallRecord | None:
        try:
            return await store.get(args.call_id)
        finally:
            await store.close()

    rec = asyncio.run(go())
    if rec is None:
        print(f"no record of call {args.call_id!r}", file=sys.stderr)
        return 1
    data = rec.to_json()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
        return 0
    for key, value in data.items():
        if value in (None, "", [], {}):
            continue
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        if key in ("started_at", "ended_at"):
            text = f"{_time(value)} ({value})"
        print(f"{key:>17}: {text}")
    return 0
