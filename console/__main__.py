"""``python -m console serve --config hotline.yaml [--host H] [--port P]``: the agent console.

Refuses to start (exit 2) on a config that does not validate (the old ``console.token`` keys
included: users replaced them), or on an address that is not loopback unless the config's
``console.allow_from`` names the peers that may connect; a request from any other peer gets
403 before it reaches the app (``hotline.peers.PeerFilter``).
Users are created with ``hotline users add``; without any, nobody can log in (said on start).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import re
import sys
from typing import TYPE_CHECKING

from hotline import service
from hotline.config import HotlineConfig
from hotline.peers import PeerFilter, Peers

if TYPE_CHECKING:
    from access import AccessStore


def build_app(
    config: HotlineConfig, access: AccessStore, host: str, config_path: str | None = None
) -> PeerFilter:
    """The console app behind the peer filter: loopback, ``host`` and ``console.allow_from``;
    with ``config_path`` the admins' config page (``console/admin.py``)."""
    from console.admin import lifecycle_for
    from console.app import make_app

    admin = lifecycle_for(config_path) if config_path else None
    app = make_app(config, access=access, admin=admin)
    return PeerFilter(app, Peers.of(host, config.console.allow_from))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the agent console (FastAPI)")
    p.add_argument("--config", default="hotline.yaml", help="hotline YAML config")
    p.add_argument("--host", help="listen address (default: console.host)")
    p.add_argument("--port", type=int, help="listen port (default: console port of the config)")
    p.add_argument("--log-level", default="INFO", choices=service.LOG_LEVELS)
    args = parser.parse_args(argv)
    config = service.start(args.config, args.log_level)
    if config is None:
        return 2
    c = config.console
    host = args.host or c.host
    port = config.console_port if args.port is None else args.port
    if not 1 <= port <= 65535:
        print(f"refusing to start: bad --port {port}", file=sys.stderr)
        return 2
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not c.allow_from:
        print(
            f"refusing to start: {host} is not loopback and console.allow_from is empty",
            file=sys.stderr,
        )
        return 2

    import uvicorn

    from access import AccessStore

    access = AccessStore.from_config(config)
    if not access.users():
        print(f"no console users in {c.users_db} yet: `hotline users add NAME --role ROLE`",
              file=sys.stderr, flush=True)  # fmt: skip
    print(f"console listening on http://{host}:{port}/", flush=True)
    # loop="asyncio": hotline.ami wants asyncio transports (uvloop's are not); open SSE
    # streams must not hold a SIGTERM up
    uvicorn.run(
        build_app(config, access, host, args.config),
        host=host,
        port=port,
        log_config=log_config(),
        log_level=args.log_level.lower(),
        loop="asyncio",
        timeout_graceful_shutdown=2,
        access_log=False,  # query strings may hold caller numbers: the audit log records requests
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
