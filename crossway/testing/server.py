"""A small HTTP/1.1 server on asyncio and httptools, for the simulated upstream.

It is here so the upstream costs little CPU: on a 2-core machine the benchmark's upstream
shares the cores with the gateway it measures. It does what the simulated upstream needs and
no more: keep-alive, bodies by content-length or chunked, fixed-length and chunked (streamed)
answers, dropping a connection on purpose, and noticing a client that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools

log = logging.getLogger("crossway.testing")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(slots=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # a streamed answer: chunks written as they come, in chunked transfer encoding
    stream: AsyncIterator[bytes] | None = None


class Cut(Exception):
    """Raised by a stream to drop the connection mid-answer."""


Handler = Callable[[Request], Awaitable[Reply]]


def _head(status: int, headers: dict[str, str], extra: str) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
    lines.append(extra)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.queue: list[Request] = []  # pipelined requests wait their turn
        self.task: asyncio.Task[None] | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_head(400, {"content-length": "0", "connection": "close"}, ""))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.writable.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client went away mid-answer

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        query = parsed.query.decode("latin-1") if parsed.query else ""
        request = Request(
            self.parser.get_method().decode(),
            parsed.path.decode("latin-1"),
            dict(parse_qsl(query)),
            self.headers,
            b"".join(self.body),
        )
        self.queue.append(request)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._serve())

    # answering
    async def _serve(self) -> None:
        while self.queue and not self.closed:
            request = self.queue.pop(0)
            try:
                reply = await self.server.handler(request)
                await self._send(reply)
            except Cut:
                self._close()
                return
            except Exception:
                log.exception("simulated upstream failed on %s %s", request.method, request.path)
                self._write(_head(500, {"content-length": "0", "connection": "close"}, ""))
                self._close()
                return
            if request.headers.get("connection", "").lower() == "close":
                self._close()
                return

    async def _send(self, reply: Reply) -> None:
        if reply.stream is None:
            self._write(
                _head(reply.status, reply.headers, f"content-length: {len(reply.body)}\r\n")
                + reply.body
            )
            return
        self._write(_head(reply.status, reply.headers, "transfer-encoding: chunked\r\n"))
        async for chunk in reply.stream:
            if self.closed:
                raise asyncio.CancelledError
            if chunk:
                self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if not self.writable.is_set():
                    await self.writable.wait()
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HTTPServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: Any = None,
        tls: ssl.SSLContext | None = None,
    ) -> int:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(
                lambda: _Connection(self), sock=sock, backlog=2048, ssl=tls
            )
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self), host, port, reuse_address=True, backlog=2048, ssl=tls
            )
        port_used: int = self._server.sockets[0].getsockname()[1]
        return port_used

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn._close()
            if conn.task is not None:
                conn.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.task
        await self._server.wait_closed()
        self._server = None
