"""The lean HTTP/1.1 client against hand-written servers: framing, reuse, failures."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest
from yarl import URL

from crossway.providers.http1 import (
    ConnectFailed,
    ConnectionBroken,
    Pool,
    ReadTimeout,
    request_head,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Answers each request with the next canned reply; counts connections."""

    def __init__(self, replies: list[bytes | Handler]) -> None:
        self.replies = replies
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if isinstance(reply, bytes):
                    writer.write(reply)
                    await writer.drain()
                else:
                    await reply(reader, writer)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def pool(self, read_timeout: float | None = 5) -> Pool:
        return Pool(
            URL(f"http://127.0.0.1:{self.port}/v1/x"), connect_timeout=2, read_timeout=read_timeout
        )


def head_for(pool: Pool, body: bytes) -> bytes:
    return request_head(
        URL("http://h/v1/chat/completions?x=1"),
        pool.host_header,
        {"authorization": "Bearer k"},
        len(body),
    )


def ok(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n").encode() + body


async def test_keep_alive_reuses_one_connection_and_frames_the_request() -> None:
    async with RawServer([ok(b"one"), ok(b"two"), ok(b"three")]) as server:
        pool = server.pool()
        for expected in (b"one", b"two", b"three"):
            resp = await pool.request(head_for(pool, b"{}"), b"{}")
            assert resp.status == 200 and await resp.read() == expected
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"authorization: Bearer k\r\n" in first and first.endswith(b"\r\n\r\n{}")
        pool.close()


async def test_chunked_and_read_until_close_bodies() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    async with RawServer([chunked, until_close]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        assert [c async for c in resp.chunks()] in ([b"hello world"], [b"hello", b" world"])
        resp = await pool.request(head_for(pool, b""), b"")
        assert await resp.read() == b"all of it"
        assert not pool.idle  # a connection the server closes is not kept


async def test_gzip_answers_are_decoded() -> None:
    packed = gzip.compress(b'{"ok": true}')
    async with RawServer([ok(packed, "content-encoding: gzip\r\n")]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        assert await resp.read() == b'{"ok": true}'


async def test_a_stale_idle_connection_is_replaced_transparently() -> None:
    async def close_after_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(ok(b"first"))
        await writer.drain()
        writer.close()  # the server drops the kept-alive connection

    async with RawServer([close_after_answer, ok(b"second")]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        assert await resp.read() == b"first"
        await asyncio.sleep(0.05)
        resp = await pool.request(head_for(pool, b""), b"")
        assert await resp.read() == b"second"
        assert server.connections == 2


async def test_read_timeout_before_headers() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with RawServer([never]) as server:
        pool = server.pool(read_timeout=0.2)
        with pytest.raises(ReadTimeout):
            await pool.request(head_for(pool, b""), b"")
        assert not pool.idle


async def test_a_body_cut_short_is_an_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    async with RawServer([cut]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        with pytest.raises(ConnectionBroken):
            await resp.read()
        assert not pool.idle


async def test_refused_connection() -> None:
    pool = Pool(URL("http://127.0.0.1:9/v1"), connect_timeout=2, read_timeout=2)
    with pytest.raises(ConnectFailed):
        await pool.request(head_for(pool, b""), b"")


async def test_large_streams_flow_through_with_bounded_buffering() -> None:
    piece = b"x" * 65536
    count = 64  # 4 MB, more than the pause threshold

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(count):
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with RawServer([stream]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        total = 0
        async for chunk in resp.chunks():
            total += len(chunk)
            await asyncio.sleep(0)  # a slow reader
        assert total == len(piece) * count


async def test_dropping_an_unfinished_answer_closes_its_connection() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        try:
            await reader.read()  # returns when the client closes
        finally:
            writer.close()

    async with RawServer([slow]) as server:
        pool = server.pool()
        resp = await pool.request(head_for(pool, b""), b"")
        async for chunk in resp.chunks():
            assert chunk == b"abc"
            break
        resp.close()
        assert not pool.idle


async def test_total_timeout_ends_a_trickling_answer() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(100):  # each chunk well inside the read timeout
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with RawServer([trickle]) as server:
        pool = Pool(
            URL(f"http://127.0.0.1:{server.port}/"),
            connect_timeout=2,
            read_timeout=1,
            total_timeout=0.3,
        )
        resp = await pool.request(head_for(pool, b""), b"")
        received = b""
        with pytest.raises(ReadTimeout):
            async for chunk in resp.chunks():
                received += chunk
        assert 0 < len(received) < 100
