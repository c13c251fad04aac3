"""A lean Redis client: one pipelined connection, replies parsed by hiredis.

Why not redis-py: on the request path of a limited key its Python-level machinery cost more
CPU than everything else Crossway does for the request (docs/performance.md). This client
sends commands as they come on one connection (Redis answers in order), so concurrent
requests share it without a pool, and a burst of commands goes out in one write.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis


class RedisError(Exception):
    """Redis answered with an error, or the connection failed."""


def _pack(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.reader = hiredis.Reader(replyError=RedisError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.client.pending
        while (reply := self.reader.gets()) is not False:
            waiter = pending.popleft()
            if waiter.done():
                continue
            if isinstance(reply, RedisError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(exc)


class RespClient:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", ""):
            raise ValueError(f"only redis:// URLs are supported, not {parsed.scheme}://")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.password = unquote(parsed.password) if parsed.password else None
        self.username = unquote(parsed.username) if parsed.username else None
        self.db = int(parsed.path.lstrip("/") or 0)
        self.pending: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(
                lambda: _Protocol(self), self.host, self.port
            )
        except OSError as exc:
            raise RedisError(
                f"cannot connect to Redis at {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._protocol = protocol
        hello: list[tuple[Any, ...]] = []
        if self.password is not None:
            hello.append(
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
        if self.db:
            hello.append(("SELECT", self.db))
        for command in hello:
            await self._send(protocol, command)
        return protocol

    async def _ready(self) -> _Protocol:
        if self._protocol is not None:
            return self._protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self.pending.append(waiter)
        # commands issued in one turn of the loop leave in one write (one system call)
        if not self._outgoing:
            loop.call_soon(self._flush, protocol)
        self._outgoing.append(_pack(args))
        return waiter

    def _flush(self, protocol: _Protocol) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if protocol.transport is not None and not protocol.transport.is_closing():
            protocol.transport.write(data)

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol or await self._ready()
        return await self._send(protocol, args)

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one write; their replies (or errors) in order."""
        protocol = self._protocol or await self._ready()
        waiters = [self._send(protocol, args) for args in commands]
        return await asyncio.gather(*waiters, return_exceptions=True)

    def lost(self, exc: Exception | None) -> None:
        self._protocol = None
        error = RedisError(
            f"the connection to Redis was lost ({exc})"
            if exc
            else "the connection to Redis was closed"
        )
        while self.pending:
            waiter = self.pending.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


class Script:
    """A Lua script run by its SHA, loaded again if Redis has forgotten it."""

    def __init__(self, client: RespClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def many(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run the script once per (keys, args), all in one write."""
        replies = await self.client.call_many(
            [("EVALSHA", self.sha, len(k), *k, *a) for k, a in calls]
        )
        if any(isinstance(r, RedisError) and str(r).startswith("NOSCRIPT") for r in replies):
            replies = await self.client.call_many(
                [("EVAL", self.source, len(k), *k, *a) for k, a in calls]
            )
        return replies

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.client.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except RedisError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.client.call("EVAL", self.source, len(keys), *keys, *args)
