"""``python -m acd serve --config hotline.yaml``: the ACD router (``acd/router.py``).

It prints ``ACD router: following AMI`` once logged in to AMI (the stack's readiness waits
for it).  With ``acd.mode: app_queue`` it refuses to start: nothing would route to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from redis import Redis
from redis.exceptions import RedisError

from acd.lease import Lease
from acd.router import COMMAND_BLOCK_MS, AcdRouter, engine_for
from hotline import service
from hotline.ami import follow_events
from hotline.config import HotlineConfig

REDIS_TIMEOUT_S = 0.5
"""Redis calls of the router give up after this: a Redis that hangs must not hold AMI."""


async def serve(config: HotlineConfig, name: str) -> None:
    redis = Redis(
        **config.redis.client_kwargs(),  # type: ignore[arg-type]
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    blocking = Redis(
        **config.redis.client_kwargs(),  # type: ignore[arg-type]
        socket_timeout=COMMAND_BLOCK_MS / 1000 + 2.0,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    tickets = None
    if config.acd.callback.enabled:
        from tickets import open_store

        tickets = open_store(config).create  # callbacks given up become tickets
    lease = Lease(redis, name, config.acd.lease_s) if config.acd.routers > 1 else None
    router = AcdRouter(
        config,
        redis,
        engine_for(config, redis),
        name,
        blocking_redis=blocking,
        tickets=tickets,
        lease=lease,
    )
    router.sign_in_configured()  # acd.login_at_start: applied by the leader's command loop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    a = config.ami
    ami = (a.host, a.port, a.username, a.secret)
    tasks = [
        asyncio.create_task(follow_events(*ami, router.handle, "ACD events", router.connected)),
        asyncio.create_task(router.heartbeat_loop(stop)),
        asyncio.create_task(router.timer_loop(stop)),
        asyncio.create_task(router.command_loop(stop)),
    ]
    if lease is not None:
        tasks.append(asyncio.create_task(router.lease_loop(stop)))
    print(f"ACD router {name}: Redis {config.redis.host}:{config.redis.port}", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if lease is not None:
        with contextlib.suppress(RedisError):
            lease.release()  # a clean stop hands over at once
    redis.close()
    blocking.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acd", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the ACD router")
    p.add_argument("--config", required=True, help="hotline YAML config")
    p.add_argument("--name", default="router-1", help="consumer name for agent commands")
    p.add_argument("--log-level", default="INFO", choices=service.LOG_LEVELS)
    args = parser.parse_args(argv)
    config = service.start(args.config, args.log_level)
    if config is None:
        return 2
    if config.acd.mode != "router":
        print("refusing to start: acd.mode is not 'router'", file=sys.stderr)
        return 2
    asyncio.run(serve(config, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
