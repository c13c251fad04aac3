"""A small ASGI app on Crossway's own server, and a raw-socket client to talk HTTP/1.1 to it.

The app's answer is chosen per request by its path, so each test says what it needs with the
request it sends; what the app saw (scopes, bodies, messages) is kept for the test to read.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from conftest import BackgroundLoop

from crossway.server.http1 import Message
from crossway.server.serve import Server

Receive = Any
Send = Any


@dataclass
class Seen:
    scopes: list[Message] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    after_body: list[str] = field(default_factory=list)  # what receive() said once the body was in
    lifespan: list[str] = field(default_factory=list)
    sent_chunks: int = 0
    release: asyncio.Event | None = None  # /wait answers once this is set


async def read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def make_app(seen: Seen) -> Any:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    seen.lifespan.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    seen.lifespan.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.scopes.append(scope)
        path = scope["path"]
        body = await read_body(receive)
        seen.bodies.append(body)
        ok = [(b"content-type", b"text/plain")]
        if path == "/echo":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*ok, (b"content-length", b"%d" % len(body))],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif path == "/chunked":  # no content-length: the server frames it
            await send({"type": "http.response.start", "status": 200, "headers": ok})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/no-content":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b"ignored"})
        elif path == "/split":  # a value carrying CRLF: must not become a second header
            bad = [(b"x-value", b"a\r\nset-cookie: stolen=1"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": bad})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/bad-name":
            bad = [(b"x value", b"1"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": bad})
        elif path == "/raise":
            raise ValueError("the app broke")
        elif path == "/raise-late":
            await send({"type": "http.response.start", "status": 200, "headers": ok})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise ValueError("the app broke mid-answer")
        elif path == "/silent":
            return
        elif path == "/too-long":
            headers = [(b"content-length", b"2")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"four"})
        elif path == "/too-short":
            headers = [(b"content-length", b"10")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"four"})
        elif path == "/watch":  # answers once receive() says the client left
            seen.after_body.append((await receive())["type"])
        elif path == "/wait":
            assert seen.release is not None
            await seen.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": ok})
            await send({"type": "http.response.body", "body": b"released"})
        elif path == "/head-then-wait":
            assert seen.release is not None
            await send({"type": "http.response.start", "status": 200, "headers": ok})
            await seen.release.wait()
            await send({"type": "http.response.body", "body": b"late"})
        elif path == "/flood":  # 64 MB in 64 KB parts, for a client that does not read
            headers = [(b"content-length", b"%d" % (1024 * 65536))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            part = b"x" * 65536
            for _ in range(1024):
                await send({"type": "http.response.body", "body": part, "more_body": True})
                seen.sent_chunks += 1
            await send({"type": "http.response.body", "body": b""})
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*ok, (b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
        if path != "/watch":
            seen.after_body.append((await receive())["type"])

    return app


@dataclass
class Served:
    server: Server
    seen: Seen
    background: BackgroundLoop

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)
        return sock


def start_server(background: BackgroundLoop, **options: Any) -> Served:
    seen = Seen()

    async def start() -> Server:
        seen.release = asyncio.Event()
        server = Server(make_app(seen), "127.0.0.1", 0, **options)
        await server.start()
        return server

    return Served(background.run(start()), seen, background)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name]
        return found[0] if found else None


def read_answer(sock: socket.socket, buffer: bytearray, head_request: bool = False) -> Answer:
    """One answer off the socket (what follows it stays in `buffer`)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    status_line, *lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = [tuple(line.split(": ", 1)) for line in lines]
    answer = Answer(status, headers, b"")  # type: ignore[arg-type]
    if head_request or status in (204, 304) or status < 200:
        return answer
    length = answer.header("content-length")
    if length is not None:
        while len(buffer) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a body")
            buffer += chunk
        answer.body = bytes(buffer[: int(length)])
        del buffer[: int(length)]
    elif answer.header("transfer-encoding") == "chunked":
        answer.body = _dechunk(sock, buffer)
    else:  # until the connection closes
        while chunk := sock.recv(65536):
            buffer += chunk
        answer.body = bytes(buffer)
        buffer.clear()
    return answer


def _more(sock: socket.socket, buffer: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError(f"closed inside a chunked body: {bytes(buffer[:80])!r}")
    buffer += chunk


def _dechunk(sock: socket.socket, buffer: bytearray) -> bytes:
    out = bytearray()
    while True:
        while b"\r\n" not in buffer:
            _more(sock, buffer)
        size_line, _, _ = bytes(buffer).partition(b"\r\n")
        size = int(size_line, 16)
        need = len(size_line) + 2 + size + 2
        while len(buffer) < need:
            _more(sock, buffer)
        out += buffer[len(size_line) + 2 : len(size_line) + 2 + size]
        del buffer[:need]
        if size == 0:
            return bytes(out)


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection (reads until EOF, dropping any data)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
