"""A lean HTTP/1.1 client for upstream calls: keep-alive pool, streaming bodies, timeouts.

Why not aiohttp or httpx: per request they cost more CPU than the whole rest of the gateway
(see docs/performance.md). This client does what a pass-through gateway needs and nothing
else: POST a body, get the status and headers, then read the body whole or chunk by chunk as
it arrives; TLS; gzip/deflate answers; a bounded pool of idle connections per host; a fresh
connection when a reused one turns out to be closed before it answered.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools
from yarl import URL

_UPLOAD_SLICE = 256 * 1024  # bytes of an upload handed to the transport at a time
_HIGH_WATER = 1 << 20  # pause reading a stream when this much is buffered and unread


class ConnectFailed(Exception):
    """The TCP or TLS connection could not be made (refused, DNS, unreachable)."""

    def __init__(self, message: str, *, dns: bool = False) -> None:
        super().__init__(message)
        self.dns = dns


class ReadTimeout(Exception):
    """No byte of the answer arrived within the read timeout."""


class ConnectionBroken(Exception):
    """The connection closed or failed before the answer was complete."""

    def __init__(self, message: str, *, before_answer: bool = False) -> None:
        super().__init__(message)
        self.before_answer = before_answer  # nothing was received: safe to try again


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.received_any = False
        self.headers: dict[str, str] = {}
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.drained = asyncio.Event()  # the transport can take more (uploads wait for it)
        self.drained.set()

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionBroken("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"the upstream sent invalid HTTP: {exc}"))

    def pause_writing(self) -> None:
        self.drained.clear()

    def resume_writing(self) -> None:
        self.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.drained.set()
        if self.headers_done and not self.complete and self._reads_to_close():
            self.complete = True  # a body without a length ends when the connection does
            self._wake()
        elif not self.complete:
            self._fail(
                ConnectionBroken(
                    "the upstream closed the connection" + (f" ({exc})" if exc else ""),
                    before_answer=not self.received_any,
                )
            )

    def _reads_to_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # --- waiting ---
    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until something new happened: headers, body bytes, the end, or an error."""
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._timed_out, waiter) if timeout else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(ReadTimeout())

    def take_body(self) -> bytes:
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reset(self) -> None:
        """Ready for the next request on this connection."""
        self.parser = httptools.HttpResponseParser(self)
        self.headers, self.status, self.headers_done, self.complete = {}, 0, False, False
        self.received_any = False
        self.body.clear()
        self.buffered = 0


class Response:
    """An answer whose headers are in; read the body with `read()` or `chunks()`."""

    def __init__(
        self,
        pool: Pool,
        conn: _Connection,
        read_timeout: float | None,
        deadline: float | None,
        first_byte_timeout: float | None = None,
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._read_timeout = read_timeout
        # until the first body byte: the first-byte timeout (a stream's first token)
        self._waiting_timeout = first_byte_timeout if first_byte_timeout else read_timeout
        self._deadline = deadline
        self._peeked: bytes | None = None
        self.status = conn.status
        self.headers = conn.headers
        self._done = False
        encoding = conn.headers.get("content-encoding", "").lower()
        self._decoder = (
            zlib.decompressobj(16 + zlib.MAX_WBITS)
            if encoding == "gzip"
            else zlib.decompressobj()
            if encoding == "deflate"
            else None
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (decoded if compressed)."""
        conn = self._conn
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            if peeked:
                yield peeked
        while True:
            if conn.body:
                data = conn.take_body()
                self._waiting_timeout = self._read_timeout
                yield self._decoder.decompress(data) if self._decoder else data
                continue
            if conn.complete:
                break
            if conn.error is not None:
                raise conn.error
            await conn.wait(_timeout(self._waiting_timeout, self._deadline, conn.loop))
        self.release()

    async def peek(self) -> bytes:
        """Wait for the first body bytes (b"" for an empty body); `chunks()` yields them too.
        A stream that fails before its first byte fails here, while failover is possible."""
        conn = self._conn
        while not conn.body and not conn.complete:
            if conn.error is not None:
                raise conn.error
            await conn.wait(_timeout(self._waiting_timeout, self._deadline, conn.loop))
        self._waiting_timeout = self._read_timeout
        data = conn.take_body() if conn.body else b""
        self._peeked = self._decoder.decompress(data) if self._decoder and data else data
        return self._peeked

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Give the connection back when the answer was read to its end, else drop it."""
        if self._done:
            return
        self._done = True
        self._pool.busy -= 1
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            conn.reset()
            self._pool.put_back(conn)
        else:
            self.close()

    def close(self) -> None:
        """Drop the connection, unless the answer was already read and the connection given
        back (then there is nothing left to cancel)."""
        if self._done and not self._conn.closed and self._conn in self._pool.idle:
            return
        if not self._done:
            self._pool.busy -= 1
        self._done = True
        self._conn.closed = True
        if self._conn.transport is not None:
            self._conn.transport.close()


class Pool:
    """Keep-alive connections to one origin."""

    def __init__(
        self,
        url: URL,
        *,
        connect_timeout: float,
        read_timeout: float | None,
        total_timeout: float | None = None,
        max_idle: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        first_byte_timeout: float | None = None,
    ) -> None:
        self.host = url.raw_host or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout  # from sending to the end of the answer
        # from sending to the answer's headers and its first body byte (None: read_timeout)
        self.first_byte_timeout = first_byte_timeout or read_timeout
        self.max_idle = max_idle
        self.idle: deque[_Connection] = deque()
        self.busy = 0  # connections carrying a request or an answer not yet read (see tests)
        default_port = 443 if url.scheme == "https" else 80
        self.host_header = self.host if self.port == default_port else f"{self.host}:{self.port}"

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise ConnectFailed(
                f"{exc.strerror or exc}", dns=isinstance(exc, socket.gaierror)
            ) from None
        return protocol

    def put_back(self, conn: _Connection) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def request(self, head: bytes, body: bytes | list[bytes | memoryview]) -> Response:
        """Send one request (head already framed) and wait for the answer's headers."""
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(conn, head, body)
            except ConnectionBroken as exc:
                if not exc.before_answer:
                    raise
                # the upstream had closed this idle connection: try the next one
        return await self._exchange(await self._connect(), head, body)

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes | list[bytes | memoryview]
    ) -> Response:
        assert conn.transport is not None
        self.busy += 1
        deadline = conn.loop.time() + self.total_timeout if self.total_timeout else None
        try:
            if isinstance(body, list):  # pieces of an upload: sent as the socket takes them
                conn.transport.write(head)
                await self._send_pieces(conn, body, deadline)
            elif len(body) < 65536:
                conn.transport.write(head + body)
            else:
                conn.transport.write(head)
                conn.transport.write(body)
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(_timeout(self.first_byte_timeout, deadline, conn.loop))
        except BaseException:
            self.busy -= 1
            conn.closed = True
            conn.transport.close()
            raise
        return Response(self, conn, self.read_timeout, deadline, self.first_byte_timeout)

    async def _send_pieces(
        self, conn: _Connection, pieces: list[bytes | memoryview], deadline: float | None
    ) -> None:
        """Write in slices, waiting while the transport is full, so at most one slice sits in
        its buffer: a large upload is never copied whole."""
        assert conn.transport is not None
        for piece in pieces:
            view = memoryview(piece)
            for at in range(0, len(view), _UPLOAD_SLICE):
                if conn.error is not None:
                    raise conn.error
                conn.transport.write(view[at : at + _UPLOAD_SLICE])
                if not conn.drained.is_set():
                    timeout = _timeout(self.first_byte_timeout, deadline, conn.loop)
                    try:
                        await asyncio.wait_for(conn.drained.wait(), timeout)
                    except TimeoutError:
                        raise ReadTimeout("the upstream stopped taking the upload") from None

    def close(self) -> None:
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is not None:
                conn.transport.close()


def _timeout(
    read: float | None, deadline: float | None, loop: asyncio.AbstractEventLoop
) -> float | None:
    """The wait allowed now: the read timeout, or less if the total deadline is nearer."""
    if deadline is None:
        return read
    left = max(deadline - loop.time(), 0.001)
    return left if read is None else min(read, left)


def request_head(url: URL, host_header: str, headers: dict[str, str], length: int) -> bytes:
    target = url.raw_path_qs or "/"
    lines = [f"POST {target} HTTP/1.1\r\nhost: {host_header}\r\n"]
    lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
    lines.append(f"content-length: {length}\r\n\r\n")
    return "".join(lines).encode("latin-1")


__all__ = ["ConnectFailed", "ConnectionBroken", "Pool", "ReadTimeout", "Response", "request_head"]
