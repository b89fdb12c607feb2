"""``hotline`` subcommands: each module exposes ``add_parser(subparsers)`` and sets
``func(args) -> int`` on its parser(s).  Optional modules are plugged in when present."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

BUILTIN = (
    "cli.commands.stack",
    "cli.commands.config_cmd",
    "cli.commands.users",
    "cli.commands.calls",
)
OPTIONAL = ("cli.commands.call", "cli.commands.speech")


def default_config() -> str:
    return os.environ.get("HOTLINE_CONFIG", "hotline.yaml")


def add_common(parser: argparse.ArgumentParser) -> None:
    """--config / --instance / --run-dir shared by the stack commands."""
    parser.add_argument("--config", default=default_config(), help="hotline YAML config")
    parser.add_argument("--instance", default="demo", help="instance name (default: demo)")
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="PID files and logs (default: <repo>/run)"
    )


def register(subparsers: argparse._SubParsersAction) -> list[str]:
    """Add every available command; return the optional modules that could not be loaded."""
    missing = []
    for name in BUILTIN:
        importlib.import_module(name).add_parser(subparsers)
    for name in OPTIONAL:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            missing.append(name)
            continue
        module.add_parser(subparsers)
    return missing
