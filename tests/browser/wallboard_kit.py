"""What the wallboard's browser test and benchmark share: a throw-away redis-server, and a
console app whose board reads it (the real :class:`supervise.board.Board`)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from browser_kit import free_port

T = TypeVar("T")


@contextmanager
def redis_server() -> Iterator[int]:
    """A redis-server on a free loopback port, no persistence, in a temporary directory;
    yields the port, stops the process (only this one) afterwards."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (scripts/install-deps.sh)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wallboard-redis-") as workdir:
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end in a thread of its own (Playwright's sync API keeps an
    event loop running in the test's thread)."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(make())))  # type: ignore[arg-type]
    thread.start()
    thread.join(30)
    if not out:
        raise RuntimeError("the coroutine failed or did not finish (see the thread's error)")
    return out[0]


def board_for(config: Any, port: int) -> Any:
    """The config's board, reading the redis-server on ``port``."""
    from redis.asyncio import Redis

    from supervise.board import Board

    return Board.from_config(config, redis=lambda: Redis(host="127.0.0.1", port=port))
