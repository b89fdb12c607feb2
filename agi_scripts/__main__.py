"""``python -m agi_scripts serve --config hotline.yaml [--host H] [--port P]``.

Refuses to start on a config that does not validate (exit 2, each field and line printed).
SIGTERM/SIGINT: stop accepting, let calls in the IVR finish for ``--drain-s`` seconds, then
hand the rest back to the dialplan and exit 0.  SIGUSR1 logs the session counters.  SIGHUP
rereads the config file (``hotline reload``, an admin's apply): calls that start from then on
follow it, calls in progress finish on the one they started with; a file that does not
validate is refused and the running config stays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING

from agi_scripts.server import AgiApp, AgiServer, load_handlers
from hotline import service
from hotline.config import HotlineConfig

if TYPE_CHECKING:
    from notices.phone import CallerNotices

log = logging.getLogger("agi_scripts")


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def serve(
    app: AgiApp,
    host: str,
    port: int,
    drain_s: float,
    speech: bool = True,
    caller_rules: bool = True,
    config_path: str | None = None,
) -> None:
    listener = policy = events = None
    if speech and app.config is not None:
        from agi_scripts.speech_listen import SpeechListener

        listener = app.listener = SpeechListener.from_config(app.config)
        log.info("speech: AudioSocket 127.0.0.1:%d, drafts from Redis", listener.port)
    if caller_rules and app.config is not None:
        try:
            from callers.policy import CallerPolicy

            policy = CallerPolicy.from_config(app.config)
        except Exception as exc:  # fail open: every caller is "normal"
            log.error("caller rules unavailable, every caller counts as normal: %s", exc)
        else:
            app.policy, app.throttle = policy, policy.throttle
            log.info("caller rules: throttle and open demands checked at call start")
    if app.config is not None:
        from calls.stream import CallStream

        events = app.events = CallStream.from_config(app.config)
    if events is not None and listener and policy is not None and policy.tickets is not None:
        from speech.drafts import DraftKeeper

        app.drafts = DraftKeeper(events, policy.tickets)
    if app.config is not None:
        from acd.agent_log import quick_client

        app.acd_redis = quick_client(app.config)  # agents' feature codes
    kb_task = asyncio.create_task(_self_service(app)) if app.config is not None else None
    loop = asyncio.get_running_loop()
    if config_path is not None:  # before listening: a reload may follow right after
        loop.add_signal_handler(signal.SIGHUP, reread_config, app, config_path)
    server = AgiServer(app)
    # signals before "listening": the Stack treats that line as ready, and SIGUSR1's default
    # action would kill the server (seen in CI when the metrics start widened the gap)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: log.info("stats %s", json.dumps(server.stats.as_dict()))
    )
    bound = await server.start(host, port)
    print(f"FastAGI listening on {bound[0]}:{bound[1]}", flush=True)
    if app.config is not None:
        from agi_scripts.metrics import PORT_OFFSET, serve_metrics

        stream = app.events
        dropped = (lambda: stream.dropped) if stream is not None else None
        serve_metrics(server.stats, app.config.agi.port + PORT_OFFSET, dropped)

    await stop.wait()
    log.info("stopping")
    await server.stop(drain_s)
    if listener is not None:
        await listener.close()
    if policy is not None:
        await policy.close()
    if events is not None:
        await events.close()
    if app.acd_redis is not None:
        await app.acd_redis.aclose()
    if kb_task is not None:
        kb_task.cancel()


def reread_config(app: AgiApp, path: str) -> bool:
    """Swap ``app.config`` (and the seat router built from it) for the file at ``path``;
    False, logged, when the file does not validate (the running config stays)."""
    import hashlib

    from acd.queues import StaticQueueRouter
    from hotline.config import ConfigError, load_config

    try:
        config = load_config(path)
    except (ConfigError, OSError) as exc:
        log.error("config reread refused, the running config stays: %s", exc)
        return False
    if isinstance(app.router, StaticQueueRouter):
        app.router = StaticQueueRouter([s.id for s in config.seats], config.general_seat.id)
    app.config = config
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
    log.info("config reread: %s (menus %s)", digest, ", ".join(config.menus))
    return True


async def _self_service(app: AgiApp) -> None:
    """Callers' self-service (第十一条) once the knowledge base is indexed (seconds, in a
    thread; until then and on any failure callers reach an agent as before)."""
    from kb.model import KbError, KbUnavailable
    from kb.phone import load_offers

    assert app.config is not None
    try:
        app.kb = await asyncio.to_thread(load_offers, app.config)
    except (KbError, KbUnavailable, OSError) as exc:
        log.error("knowledge base unavailable, callers reach agents: %s", exc)
    else:
        if app.kb is not None:
            log.info("self-service for seats %s", ", ".join(app.config.kb.self_service))


def _notices(config: HotlineConfig) -> CallerNotices | None:
    """Incident notices (第十三条) for callers; on any failure callers hear none."""
    from notices.phone import load_notices
    from notices.store import NoticeStoreError

    try:
        return load_notices(config)
    except (NoticeStoreError, OSError) as exc:
        log.error("incident notices unavailable, callers hear none: %s", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agi_scripts", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the FastAGI server")
    p.add_argument("--config", required=True, help="hotline YAML config")
    p.add_argument("--host", help="listen address (default: agi.host from the config)")
    p.add_argument("--port", type=int, help="listen port (default: agi.port from the config)")
    p.add_argument("--drain-s", type=float, default=5.0, help="grace period on SIGTERM")
    p.add_argument("--no-speech", action="store_true", help="Listen hears nothing (keypad only)")
    p.add_argument(
        "--no-caller-rules", action="store_true", help="no throttle / open-demand look-up"
    )
    p.add_argument("--log-level", default="INFO", choices=service.LOG_LEVELS)
    args = parser.parse_args(argv)

    config = service.start(args.config, args.log_level)
    if config is None:
        return 2
    if args.port is not None and not 0 <= args.port <= 65535:
        print(f"refusing to start: bad --port {args.port}", file=sys.stderr)
        return 2
    host = args.host or config.agi.host
    port = config.agi.port if args.port is None else args.port
    app = AgiApp(config=config, handlers=load_handlers())
    app.notices = _notices(config)
    loop_name = _install_uvloop()
    log.info("event loop: %s", loop_name)
    try:
        rules = not args.no_caller_rules
        asyncio.run(serve(app, host, port, args.drain_s, not args.no_speech, rules, args.config))
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
