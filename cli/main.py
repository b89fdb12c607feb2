"""The ``hotline`` command line: ``up``, ``down``, ``status``, ``reload``, ``config``, and
``call`` / ``speech`` when their modules are installed."""

from __future__ import annotations

import argparse
import sys

from cli.commands import register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline", description="12345 hotline: Asterisk + FastAGI IVR + ACD"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
