"""``hotline speech analyze``: a ticket draft from a transcript or a recording.

    hotline speech analyze --text "我要投诉…"        # the draft as JSON
    hotline speech analyze --text -                 # the transcript from standard input
    hotline speech analyze call.wav                 # recognise, then analyse
    python -m cli.commands.speech analyze --text "…"   # the same without cli.main

Exit codes: 0 draft printed, 2 bad input (no/unreadable config, missing file), 3 speech
recognition not available or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hotline.config import ConfigError, HotlineConfig, load_config

_REPO_CONFIG = Path(__file__).resolve().parents[2] / "hotline.yaml"


class CommandError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``speech`` (with ``analyze``) to a ``hotline`` CLI's subparsers."""
    speech = subparsers.add_parser("speech", help="speech tools: analyse a demand")
    sub = speech.add_subparsers(dest="speech_command", metavar="COMMAND")
    sub.required = True
    analyze = sub.add_parser(
        "analyze",
        help="print the ticket draft for a transcript (--text) or a WAV recording",
        description="Print the ticket draft (JSON) extracted from a transcript or a recording.",
    )
    source = analyze.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the transcript ('-' reads standard input)")
    source.add_argument("wav", nargs="?", help="a WAV file to recognise first")
    analyze.add_argument(
        "--config",
        dest="speech_config",
        metavar="PATH",
        help="hotline config (default: $HOTLINE_CONFIG, ./hotline.yaml, the repo's hotline.yaml)",
    )
    analyze.add_argument("--compact", action="store_true", help="one line of JSON")
    analyze.set_defaults(func=run_analyze)
    return speech


def _config_path(args: argparse.Namespace) -> Path:
    chosen = getattr(args, "speech_config", None) or getattr(args, "config", None)
    if chosen:
        return Path(chosen)
    if os.environ.get("HOTLINE_CONFIG"):
        return Path(os.environ["HOTLINE_CONFIG"])
    local = Path("hotline.yaml")
    return local if local.exists() else _REPO_CONFIG


def _load(args: argparse.Namespace) -> HotlineConfig:
    try:
        return load_config(_config_path(args))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _transcribe(path: str, config: HotlineConfig) -> tuple[str, dict[str, Any]]:
    wav = Path(path)
    if not wav.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        from speech.recognize import transcribe
    except Exception as exc:  # E2's recogniser missing or broken: say so, plainly
        raise CommandError(
            "speech recognition is not available (speech.recognize.transcribe: "
            f"{type(exc).__name__}: {exc}); use --text TEXT instead",
            3,
        ) from None
    try:
        result = transcribe(wav, config)
    except Exception as exc:
        raise CommandError(f"{path}: recognition failed: {type(exc).__name__}: {exc}", 3) from None
    if isinstance(result, str):
        return result, {}
    text = getattr(result, "text", None)
    if text is None and isinstance(result, dict):
        text = result.get("text")
    if not isinstance(text, str):
        raise CommandError(f"{path}: the recogniser returned no text ({type(result).__name__})", 3)
    info = {
        k: getattr(result, k)
        for k in ("engine", "confidence", "audio_seconds", "decode_seconds")
        if isinstance(getattr(result, k, None), str | int | float)
    }
    return text, info


def run_analyze(args: argparse.Namespace) -> int:
    """Print the draft for ``--text`` or a WAV file; errors go to stderr with an exit code."""
    from speech.fields import extract

    try:
        config = _load(args)
        if args.text is not None:
            text = sys.stdin.read() if args.text == "-" else args.text
            info: dict[str, Any] = {}
        else:
            text, info = _transcribe(args.wav, config)
    except CommandError as exc:
        print(f"hotline speech analyze: {exc}", file=sys.stderr)
        return exc.code
    draft = extract(text, config)
    if info:
        draft["recognition"] = info
    indent = None if args.compact else 2
    print(json.dumps(draft, ensure_ascii=False, indent=indent))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m cli.commands.speech analyze …``."""
    parser = argparse.ArgumentParser(prog="hotline")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["speech", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
