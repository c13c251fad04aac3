"""HTTP/1.1 to ASGI on asyncio and httptools: the server side of a request.

A `Connection` parses requests with httptools and runs one `Exchange` at a time, each in a
task of its own calling the ASGI app. What it does for the app, and how:

- keep-alive, with pipelined requests queued (and reading paused) until their turn;
- request bodies by content-length or chunked, buffered up to `BODY_HIGH_WATER` before
  reading pauses, `Expect: 100-continue` answered when the app first asks for the body;
- answers framed by the app's `content-length`, else chunked (HTTP/1.1) or ended by closing
  (HTTP/1.0); no body for HEAD, 1xx, 204 and 304;
- the head of an answer written together with its first body part, in one write;
- header lines the app vouches for (`trusted_lines`, an extension) written unchecked;
- `http.disconnect` from `receive()` once the client has gone or the answer is complete;
- back-pressure: `send()` waits while the transport's buffer is over its high-water mark;
- 400 for a request httptools cannot parse, 431 for a head over `MAX_HEAD_BYTES`, 500 for
  an app that fails before answering; an app failing mid-answer has its connection closed.

Idle connections and slow request heads are closed by `Server`'s once-a-second sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import unquote

import httptools

from crossway.server.head import STATUS_LINES, BadHeader, DateLine, framing, header_block

log = logging.getLogger("crossway.server")

Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

BODY_HIGH_WATER = 256 * 1024  # request body held before reading from the socket pauses
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
_ASGI = {"version": "3.0", "spec_version": "2.3"}
# An ASGI extension of this server: `http.response.start` may carry `trusted_lines`, header
# lines (bytes, each ending in CRLF) the app made itself and vouches for, written as they are:
# no check, so they cost nothing per header. They must not frame the body (no content-length,
# transfer-encoding or connection). Other servers do not offer it; apps then send headers.
_EXTENSIONS: dict[str, dict[str, Any]] = {"crossway.trusted_lines": {}}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY_STATUS = frozenset((204, 304))


class ServerState:
    """What every connection of one server shares."""

    __slots__ = ("app", "connections", "date", "loop", "shutting_down", "tasks")

    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.date = DateLine()
        self.shutting_down = False


def _refusal(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        STATUS_LINES[status]
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)
        + b"connection: close\r\n\r\n"
        + body
    )


class Connection(asyncio.Protocol):
    __slots__ = (
        "active",
        "client",
        "drained",
        "expect_continue",
        "head_bytes",
        "head_started",
        "headers",
        "idle_since",
        "in_head",
        "local",
        "parser",
        "parsing",
        "queue",
        "read_paused",
        "state",
        "transport",
        "url",
        "write_paused",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.local: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_continue = False
        self.in_head = True
        self.head_bytes = 0
        self.head_started = 0.0
        self.parsing: Exchange | None = None
        # answering
        self.active: Exchange | None = None
        self.queue: deque[Exchange] = deque()  # pipelined, parsed, not yet started
        self.idle_since: float | None = None
        self.read_paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.state.connections.add(self)
        self.local = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.idle_since = self.head_started = self.state.loop.time()

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # answered as plain HTTP/1.1, then closed: see on_headers_complete
        except httptools.HttpParserError as exc:
            log.debug("unparsable request: %r", exc)
            self.refuse(400, "Invalid HTTP request")
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.refuse(431, "Request header fields too large")

    def eof_received(self) -> bool | None:
        return None  # the transport closes; the exchange hears http.disconnect

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.parser = None  # it holds this protocol: no cycle left for the collector
        for exchange in (self.active, *self.queue):
            if exchange is not None:
                exchange.disconnected = True
                exchange.wake()
        self.queue.clear()
        self.parsing = None
        self.write_paused = False
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect_continue = False
        self.in_head = True
        self.head_bytes = 0
        self.head_started = self.state.loop.time()
        self.idle_since = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace; it is not the value
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        assert parser is not None
        url = httptools.parse_url(self.url)  # raises HttpParserInvalidURLError: a 400
        raw_path: bytes = url.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        scope: Message = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "extensions": _EXTENSIONS,
        }
        # an Upgrade (websocket, h2c) is not spoken here: the request is answered as HTTP/1.1,
        # and the connection closed after it, since httptools stops at an upgrade
        keep_alive = (
            parser.should_keep_alive()
            and not parser.should_upgrade()
            and not self.state.shutting_down
        )
        exchange = Exchange(self, scope, keep_alive, self.expect_continue, version == "1.0")
        self.parsing = exchange
        if self.active is None:
            self.start(exchange)
        else:
            self.queue.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.feed(body)

    def on_message_complete(self) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.more_body = False
            exchange.wake()
            self.parsing = None

    # running exchanges
    def start(self, exchange: Exchange) -> None:
        self.active = exchange
        self.idle_since = None
        task = self.state.loop.create_task(exchange.run())
        tasks = self.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def answered(self, exchange: Exchange) -> None:
        """The answer of the active exchange is complete: the next one, or wait, or close."""
        if self.active is exchange:
            self.active = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not exchange.keep_alive or exchange.more_body or self.state.shutting_down:
            # a body the app did not read would have to be read through: close instead
            transport.close()
            return
        if self.queue:
            self.start(self.queue.popleft())
            if not self.queue:
                self.resume_reading()
        else:
            self.idle_since = self.state.loop.time()
            self.resume_reading()

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.queue and self.transport is not None:
            self.read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    async def drain(self) -> None:
        if self.write_paused and self.transport is not None and not self.transport.is_closing():
            waiter = self.state.loop.create_future()
            self.drained = waiter
            await waiter

    def _wake_drain(self) -> None:
        waiter, self.drained = self.drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def refuse(self, status: int, text: str) -> None:
        """A request this server answers itself, then closes the connection."""
        self.parser = None
        if self.active is None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(_refusal(status, text))
        self.close()

    def is_idle(self) -> bool:
        return self.active is None and not self.queue and self.parsing is None


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


class Exchange:
    """One request and its answer: the ASGI `receive` and `send` of one app call."""

    __slots__ = (
        "body",
        "buffered",
        "chunked",
        "conn",
        "delivered",
        "disconnected",
        "done",
        "expect_continue",
        "head",
        "head_request",
        "http10",
        "keep_alive",
        "more_body",
        "no_body",
        "remaining",
        "scope",
        "started",
        "waiter",
    )

    def __init__(
        self,
        conn: Connection,
        scope: Message,
        keep_alive: bool,
        expect_continue: bool,
        http10: bool,
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.http10 = http10
        self.head_request = scope["method"] == "HEAD"
        # the request body
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True  # until httptools says the message is complete
        self.delivered = False  # the last of the body went to the app
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        # the answer
        self.started = False
        self.done = False
        self.head: bytes | None = None  # written with the first body part
        self.chunked = False
        self.no_body = False
        self.remaining: int | None = None  # of a content-length

    def feed(self, data: bytes) -> None:
        if self.done:
            return  # answered already: what is left of the body is read and dropped
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > BODY_HIGH_WATER:
            self.conn.pause_reading()
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self.conn.state.loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            if self.waiter is waiter:
                self.waiter = None

    # ASGI
    async def receive(self) -> Message:
        while True:
            if self.disconnected or self.done:
                return _disconnect()
            body = self.body
            if body or (not self.more_body and not self.delivered):
                self.body = []
                self.buffered = 0
                if self.conn.read_paused:
                    self.conn.resume_reading()
                more = self.more_body
                if not more:
                    self.delivered = True
                data = body[0] if len(body) == 1 else b"".join(body)
                return {"type": "http.request", "body": data, "more_body": more}
            if not self.delivered:  # more of the body is on its way
                if self.expect_continue:
                    self.expect_continue = False
                    self.conn.write(_CONTINUE)
                if self.conn.read_paused:
                    self.conn.resume_reading()
            await self._wait()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.done:
                raise RuntimeError(
                    "http.response.body before http.response.start"
                    if not self.started
                    else "http.response.body after the answer was complete"
                )
            if self.disconnected:
                return
            body: bytes = message.get("body", b"")
            more: bool = message.get("more_body", False)
            conn = self.conn
            transport = conn.transport
            assert transport is not None
            if self.no_body:
                data = b""
            elif self.chunked:
                data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
                if not more:
                    data += b"0\r\n\r\n"
            else:
                data = body
                if self.remaining is not None:
                    self.remaining -= len(body)
                    if self.remaining < 0:
                        conn.close()
                        raise RuntimeError("the answer is longer than its content-length")
            head = self.head
            if head is not None:
                self.head = None
                if data:
                    transport.writelines((head, data))
                else:
                    transport.write(head)
            elif data:
                transport.write(data)
            if not more:
                self._complete()
            elif conn.write_paused:
                await conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.head = self._make_head(message)
            self.started = True
            self.expect_continue = False
            # written with the first body part; should that not follow at once, by itself
            self.conn.state.loop.call_soon(self._flush_head)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _make_head(self, message: Message) -> bytes:
        status = message["status"]
        headers = message.get("headers") or ()
        if not isinstance(headers, list | tuple):
            headers = list(headers)
        line = STATUS_LINES.get(status) if isinstance(status, int) else None
        if line is None:
            raise BadHeader(f"invalid HTTP status {status!r}")
        block, plain = header_block(headers)
        parts = [line, self.conn.state.date.line]
        if block:
            parts.append(block)
            parts.append(b"\r\n")
            length, app_chunked, app_close = framing(block, plain)
            if app_close:
                self.keep_alive = False
        else:
            length, app_chunked, app_close = None, False, False
        trusted = message.get("trusted_lines")
        if trusted:
            parts.append(trusted)
        self.no_body = self.head_request or status in _NO_BODY_STATUS or status < 200
        if length is not None:
            self.remaining = length
        elif app_chunked:
            self.chunked = True
        elif not self.no_body:
            if self.http10:
                self.keep_alive = False  # the body ends when the connection does
            else:
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        if self.conn.state.shutting_down:
            self.keep_alive = False
        if not self.keep_alive and not app_close:
            parts.append(b"connection: close\r\n")
        elif self.http10 and self.keep_alive:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _flush_head(self) -> None:
        head = self.head
        if head is not None and not self.disconnected:
            self.head = None
            self.conn.write(head)

    def _complete(self) -> None:
        self.done = True
        self.wake()
        conn = self.conn
        if self.remaining and not self.no_body:
            log.error("the answer to %s %s is shorter than its content-length", *self._what())
            conn.close()
        conn.answered(self)

    def _what(self) -> tuple[str, str]:
        return self.scope["method"], self.scope["path"]

    async def run(self) -> None:
        conn = self.conn
        try:
            await conn.state.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("the app failed on %s %s", *self._what(), exc_info=exc)
            if self.head is not None:
                self.head = None  # nothing of the answer went out yet: it can still be a 500
                self.started = False
            if not self.started and not self.disconnected:
                # cancelled by a stop that could wait no longer: 503, worth retrying elsewhere
                stopped = isinstance(exc, asyncio.CancelledError) and conn.state.shutting_down
                self._fail(503 if stopped else 500)
            else:
                conn.close()
        else:
            if not self.started:
                if not self.disconnected:
                    log.error("the app did not answer %s %s", *self._what())
                    self._fail()
            elif not self.done:
                if not self.disconnected:
                    log.error("the app left its answer to %s %s unfinished", *self._what())
                    self._flush_head()
                conn.close()
        finally:
            if conn.active is self:  # it ended without completing its answer (closed above)
                conn.active = None

    def _fail(self, status: int = 500) -> None:
        self.started = self.done = True
        text = (
            "Service Unavailable: the server is stopping"
            if status == 503
            else "Internal Server Error"
        )
        self.conn.write(_refusal(status, text))
        self.conn.close()
