"""``python -m speech serve --config hotline.yaml``: run the live speech service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from hotline.config import ConfigError, load_config
from speech.models import ModelError


async def serve(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from speech.recognizers import make_recognizer
    from speech.service import ServiceSettings, SpeechService

    config = load_config(args.config)
    settings = ServiceSettings.from_env(
        host=args.host,
        port=args.port,
        audio_dir=Path(args.audio_dir) if args.audio_dir else None,
        workers=args.workers,
    )
    recognizer = make_recognizer(config, num_workers=settings.workers)
    redis = Redis(
        **{**config.redis.client_kwargs(), "port": args.redis_port or config.redis.port},  # type: ignore[arg-type]
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
    )
    service = SpeechService(config, recognizer, redis, settings)
    await service.start()
    print(
        f"speech service listening on {settings.host}:{service.port} "
        f"(engine {recognizer.name}, audio in {settings.audio_dir})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
    with contextlib.suppress(Exception):
        await redis.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m speech")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="run the AudioSocket speech service")
    sv.add_argument("--config", default="hotline.yaml")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--redis-port", type=int, help="override the config's Redis port")
    sv.add_argument("--audio-dir", help="where captured audio is kept as WAV")
    sv.add_argument("--workers", type=int, help="recognition threads")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except (ConfigError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
