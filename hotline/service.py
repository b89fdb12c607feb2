"""What every long-running hotline process does first: log to stderr, load the config."""

from __future__ import annotations

import logging
import sys

from hotline.config import ConfigError, HotlineConfig, load_config

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def start(config_path: str, log_level: str = "INFO") -> HotlineConfig | None:
    """Set up logging and load ``config_path``; ``None`` after printing why on stderr (the
    caller exits 2: a process never runs on a config that does not validate)."""
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return load_config(config_path)
    except ConfigError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return None
