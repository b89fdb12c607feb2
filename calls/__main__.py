"""``python -m calls serve --config hotline.yaml``: the AMI bridge (dialplan and channel events
→ the call event stream) and the record keeper (stream → call record store), in one process.

It prints ``AMI bridge: logged in`` once the bridge follows AMI: the stack's readiness
(``hotline up``) waits for it, so a call placed right after it has its start and caller on
record.  The record keeper is consumer ``records-1`` of group ``records``: stopped and
started again, it goes on where it was (nothing lost).  Calls never depend on this process.
The agent log keeper copies the ACD's agent state changes into the same store
(``calls/agent_events.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from calls.agent_events import AgentLogKeeper
from calls.bridge import BRIDGE_READY, AmiBridge
from calls.store import SqliteCallStore
from calls.stream import CallStream, StreamConsumer
from hotline import service
from hotline.ami import AmiClient, follow_events
from hotline.call import CallEvent
from hotline.config import HotlineConfig

log = logging.getLogger("calls")

RECORDS_GROUP = "records"


def record_keeper(stream: CallStream, store: SqliteCallStore, name: str) -> StreamConsumer:
    """The consumer that merges every event into its call's record."""

    async def keep(event: CallEvent, entry_id: str) -> None:
        rec = await store.apply(event, entry_id)
        if event.kind == "ended":
            log.info("call %s ended: %s seat=%s", rec.call_id, rec.outcome, rec.seat or "-")

    return StreamConsumer(stream, RECORDS_GROUP, name, keep)


def caller_hasher(config: HotlineConfig) -> Any:
    """The PII key of the ticket store (so records and tickets share caller hashes), or
    ``None`` (records keep the masked number only) when it cannot be read."""
    from hotline.privacy import CallerKey

    try:
        return CallerKey.from_file(config.tickets.key_file)
    except (OSError, ValueError) as exc:
        log.error("no PII key (%s): call records hold no caller hash", exc)
        return None


async def serve(config: HotlineConfig, name: str, bridge: bool = True) -> None:
    stream = CallStream.from_config(config, socket_timeout=5.0)
    store = SqliteCallStore(config.calls.path)
    keeper = record_keeper(stream, store, name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent_log = AgentLogKeeper(stream.redis, store)
    tasks = [asyncio.create_task(keeper.run(stop)), asyncio.create_task(agent_log.run(stop))]
    if bridge:
        ami = AmiBridge(caller_hasher(config))

        async def forward(event: dict[str, str], _client: AmiClient) -> None:
            out = ami.translate(event)
            if out is not None:
                await stream.publish(out)

        def logged_in(client: AmiClient | None) -> None:
            if client is not None:  # the stack's readiness waits for this line
                print(BRIDGE_READY, flush=True)

        a = config.ami
        follow = follow_events(
            a.host, a.port, a.username, a.secret, forward, "call events", logged_in
        )
        tasks.append(asyncio.create_task(follow))
    print(f"call records: {config.calls.path}", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()
    await stream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calls", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the AMI bridge and the record keeper")
    p.add_argument("--config", required=True, help="hotline YAML config")
    p.add_argument("--name", default="records-1", help="consumer name in the group")
    p.add_argument("--no-bridge", action="store_true", help="record keeper only")
    p.add_argument("--log-level", default="INFO", choices=service.LOG_LEVELS)
    args = parser.parse_args(argv)
    config = service.start(args.config, args.log_level)
    if config is None:
        return 2
    asyncio.run(serve(config, args.name, not args.no_bridge))
    return 0


if __name__ == "__main__":
    sys.exit(main())
