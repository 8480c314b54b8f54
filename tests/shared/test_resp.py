"""``fast_packing``: the same bytes on the wire as redis-py's packing, against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import DataError

from cim_cli.ops.services import Service
from shared.resp import fast_packing

COMMANDS = [
    (
        "EVALSHA",
        "a" * 40,
        3,
        "cim:{u}:seq",
        "cim:{u}:inbox",
        b"raw\x00\xff",
        5,
        10**15,
        -3,
        1.5,
        "héllo",
        b"",
    ),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"x"),
    ("SET", "k", memoryview(b"v" * 7000), "PX", 100),
    ("PING",),
]


def _fast_connection(cls: type = Connection) -> Connection:
    client = aioredis.Redis(connection_pool=aioredis.ConnectionPool(connection_class=cls))
    fast_packing(client)
    return client.connection_pool.connection_class()


def test_packs_every_command_byte_for_byte_as_redis_py() -> None:
    fast, plain = _fast_connection(), Connection()
    for command in COMMANDS:
        assert b"".join(fast.pack_command(*command)) == b"".join(plain.pack_command(*command)), command
    assert b"".join(fast.pack_commands(COMMANDS)) == b"".join(plain.pack_commands(COMMANDS))


def test_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError):
        _fast_connection().pack_command("SET", "k", True)


def test_keeps_the_connection_kind_and_applies_once() -> None:
    client = aioredis.Redis(connection_pool=aioredis.ConnectionPool(connection_class=SSLConnection))
    fast_packing(client)
    fast_packing(client)
    cls = client.connection_pool.connection_class
    assert issubclass(cls, SSLConnection)
    assert [c for c in cls.__mro__ if c.__name__.startswith("Fast")] == [cls]


async def test_a_client_with_fast_packing_talks_to_redis(redis_service: Service, prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_service.url)
    fast_packing(client)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(f"{prefix}k", "héllo", px=60_000)
            pipe.incrby(f"{prefix}n", 10**12)
            pipe.get(f"{prefix}k")
            replies = await asyncio.wait_for(pipe.execute(), 5)
        assert replies == [True, 10**12, "héllo".encode()]
    finally:
        await client.aclose()
