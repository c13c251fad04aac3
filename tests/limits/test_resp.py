"""The lean Redis client against the Redis on this machine."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from conftest import REDIS_URL

from crossway.limits.resp import RedisError, RespClient, Script


async def test_commands_pipeline_and_replies_come_back_in_order() -> None:
    client = RespClient(REDIS_URL)
    key = "cwtest-resp-" + secrets.token_hex(4)
    try:
        replies = await asyncio.gather(*(client.call("INCR", key) for _ in range(200)))
        assert replies == list(range(1, 201))
        assert await client.call("GET", key) == b"200"
        with pytest.raises(RedisError, match="wrong number of arguments"):
            await client.call("GET")
        assert await client.call("DEL", key) == 1
    finally:
        await client.close()


async def test_a_forgotten_script_is_loaded_again() -> None:
    client = RespClient(REDIS_URL)
    script = Script(client, f"return {{'{secrets.token_hex(4)}', ARGV[1]}}")
    try:
        first = await script([], ["x"])
        await client.call("SCRIPT", "FLUSH")
        assert await script([], ["y"]) == [first[0], b"y"]
    finally:
        await client.close()


async def test_a_lost_connection_fails_waiters_and_reconnects() -> None:
    client = RespClient(REDIS_URL)
    killer = RespClient(REDIS_URL)
    try:
        client_id = await client.call("CLIENT", "ID")
        await killer.call("CLIENT", "KILL", "ID", client_id)
        for _ in range(50):  # the first call after the kill may see the closed socket
            try:
                assert await client.call("PING") == b"PONG"
                break
            except RedisError:
                await asyncio.sleep(0.01)
        assert await client.call("CLIENT", "ID") != client_id
    finally:
        await client.close()
        await killer.close()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    client = RespClient("redis://127.0.0.1:9/0")
    with pytest.raises(RedisError, match=r"cannot connect to Redis at 127\.0\.0\.1:9"):
        await client.call("PING")
