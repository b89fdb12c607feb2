"""``python -m console serve --config hotline.yaml [--host H] [--port P]``: the agent console.

Refuses to start (exit 2) on a config that does not validate, without ``console.token`` /
``console.supervisor_token``, or on an address that is not loopback unless ``--public``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import re
import sys

from hotline.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the agent console (FastAPI)")
    p.add_argument("--config", default="hotline.yaml", help="hotline YAML config")
    p.add_argument("--host", help="listen address (default: console.host)")
    p.add_argument("--port", type=int, help="listen port (default: console port of the config)")
    p.add_argument("--public", action="store_true", help="allow a non-loopback address")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    c = config.console
    if not c.token or not c.supervisor_token:
        print("refusing to start: console.token and console.supervisor_token must be set",
              file=sys.stderr)  # fmt: skip
        return 2
    host = args.host or c.host
    port = config.console_port if args.port is None else args.port
    if not 1 <= port <= 65535:
        print(f"refusing to start: bad --port {port}", file=sys.stderr)
        return 2
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not args.public:
        print(f"refusing to start: {host} is not loopback (use --public)", file=sys.stderr)
        return 2

    import uvicorn

    from console.app import make_app

    print(f"console listening on http://{host}:{port}/", flush=True)
    # loop="asyncio": hotline.ami wants asyncio transports (uvloop's are not); open SSE
    # streams must not hold a SIGTERM up
    uvicorn.run(
        make_app(config),
        host=host,
        port=port,
        log_config=log_config(),
        log_level=args.log_level.lower(),
        loop="asyncio",
        timeout_graceful_shutdown=2,
    )
    return 0


SECRET_PARAM = re.compile(r"([?&](?:token|password|secret)=)[^&\s\"']*", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Log records without secrets in URLs: ``?token=…`` (EventSource and WebSocket clients
    cannot send headers) becomes ``?token=<redacted>`` before uvicorn writes console.log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = SECRET_PARAM.sub(r"\1<redacted>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                SECRET_PARAM.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def log_config() -> dict:
    """uvicorn's logging config with :class:`RedactSecrets` on every handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["redact_secrets"] = {"()": RedactSecrets}
    for handler in cfg["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact_secrets"]
    return cfg


if __name__ == "__main__":
    sys.exit(main())
