"""Fixtures shared by the unit tests of agents' ACD state (console, feature codes, history):
a real redis-server per test module and a real ``RedisEngine`` on it, emptied per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis_kit import redis_server

from acd.engine import RedisEngine
from acd.settings import AcdSettings


@pytest.fixture(scope="module")
def acd_redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with redis_server(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture
def engine(acd_redis_port: int) -> Iterator[RedisEngine]:
    """The ACD engine with the default policy on an empty Redis (the router's part)."""
    client = Redis(port=acd_redis_port)
    client.flushdb()
    e = RedisEngine(client, AcdSettings())
    e.install()
    yield e
    client.close()


@pytest.fixture
async def redis(acd_redis_port: int) -> AsyncIterator[AsyncRedis]:
    """An asyncio client on the same redis-server (what the console and FastAGI use)."""
    client = AsyncRedis(port=acd_redis_port)
    yield client
    await client.aclose()
