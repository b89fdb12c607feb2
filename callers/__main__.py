"""Supervisor commands for the caller rules (第二十九条), one JSON object per line.

    python -m callers --config hotline.yaml status 13800001111
    python -m callers --config hotline.yaml lift 13800001111 --by 张班长 --why "独居老人，确有诉求"
    python -m callers --config hotline.yaml flag 13800001111 --by agent1008 --note "辱骂坐席"
    python -m callers --config hotline.yaml referrals
    python -m callers --config hotline.yaml audit [13800001111] [--count 20]

Unlike the call path, these do not fail open: Redis trouble is reported (exit 1), bad input
too (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from redis.exceptions import RedisError

from callers.throttle import Throttle
from hotline.config import ConfigError, load_config


def _print(obj: object) -> None:
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj  # type: ignore[arg-type]
    print(json.dumps(data, ensure_ascii=False, sort_keys=True))


async def _run(args: argparse.Namespace, throttle: Throttle) -> None:
    try:
        if args.cmd == "status":
            d = await throttle.decide(args.number, dry=True)
            if d.failed_open:
                raise RedisError("Redis did not answer in time")
            _print(d)
        elif args.cmd == "lift":
            was = await throttle.lift(
                args.number, args.by, args.why, clear_referral=args.clear_referral
            )
            _print({"lifted": True, "was": was})
        elif args.cmd == "flag":
            _print(
                {
                    "harassment_flags": await throttle.flag_harassment(
                        args.number, args.by, args.note
                    )
                }
            )
        elif args.cmd == "referrals":
            for r in await throttle.referrals():
                _print(r)
        elif args.cmd == "audit":
            for rec in await throttle.audit(args.number, count=args.count):
                _print(rec)
    finally:
        await throttle.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m callers", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="hotline.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="a caller's stage and counters (changes nothing)").add_argument(
        "number"
    )
    lift = sub.add_parser("lift", help="lift a warning or suspension (audited)")
    lift.add_argument("number")
    lift.add_argument("--by", required=True)
    lift.add_argument("--why", required=True)
    lift.add_argument("--clear-referral", action="store_true")
    flag = sub.add_parser("flag", help="flag a call as harassment (audited)")
    flag.add_argument("number")
    flag.add_argument("--by", required=True)
    flag.add_argument("--note", required=True)
    sub.add_parser("referrals", help="callers listed for referral")
    audit = sub.add_parser("audit", help="audit records, newest first")
    audit.add_argument("number", nargs="?")
    audit.add_argument("--count", type=int, default=100)
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config)
        throttle = Throttle.from_config(config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(args, throttle))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        print(f"error: Redis at {config.redis.host}:{config.redis.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
