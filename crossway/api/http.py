"""The few HTTP pieces the front doors need, straight on ASGI.

The hot path is a raw ASGI callable: no framework request objects, no middleware stack.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from crossway.errors import GatewayError, PayloadTooLarge

if TYPE_CHECKING:
    from crossway.api.auth import Principal
    from crossway.api.services import Services
    from crossway.limits import Admission, Quota

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
# Crossway's own server takes header lines the app vouches for as they are (see
# crossway/server/http1.py); other servers get them as ordinary headers
TRUSTED_LINES = "crossway.trusted_lines"
_HEADER_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")


def head_line(name: bytes, value: bytes) -> bytes:
    """One `name: value` line for the trusted lines of an answer, checked here since the
    server will not: for values that come from configuration, made once and kept."""
    if _HEADER_NAME.fullmatch(name) is None or _HEADER_VALUE.fullmatch(value) is None:
        raise ValueError(f"not a header line HTTP can carry: {name!r}: {value!r}")
    return name + b": " + value + b"\r\n"


def pairs_of(lines: bytes) -> Headers:
    """Header lines (each ending in CRLF) as ASGI's pairs."""
    out: Headers = []
    for line in lines.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b": ")
            out.append((name, value))
    return out


class Request:
    """One request in flight: its ASGI channels, id, caller, and whether we answered yet."""

    __slots__ = (
        "_query",
        "admitted",
        "id_headers",
        "principal",
        "receive",
        "request_id",
        "response_started",
        "scope",
        "send",
        "services",
        "started",
        "trusted_lines",
        "usage_recorded",
        "wall_started",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, services: Services, request_id: str
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.services = services
        self.request_id = request_id
        self.started = time.perf_counter()
        self.wall_started = time.time()
        self.principal: Principal | None = None
        self.response_started = False
        self.usage_recorded = False
        # a limited key's quota and admission, until the request is settled
        self.admitted: tuple[Quota, Admission] | None = None
        self._query: dict[str, str] | None = None
        # the header names that carry our request id (Anthropic's SDK reads `request-id`)
        self.id_headers: tuple[bytes, ...] = (b"x-request-id",)
        self.trusted_lines = TRUSTED_LINES in scope.get("extensions", ())

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    def header(self, name: bytes) -> str | None:
        """A request header by its lower-case name (ASGI gives lower-case names)."""
        for key, value in self.scope["headers"]:
            if key == name:
                text: str = value.decode("latin-1")
                return text
        return None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            from urllib.parse import parse_qsl

            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = dict(parse_qsl(raw, keep_blank_values=True))
        return self._query

    async def body(self, limit: int) -> bytes:
        """The whole body; 413 as soon as it is known to be larger than `limit`."""
        length = self.header(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def upload(self, limit: int) -> bytearray:
        """A large body (a file upload) in one buffer, filled as it arrives: held once, never
        joined from pieces. 413 as soon as it is known to be larger than `limit`."""
        length = self.header(b"content-length")
        known = int(length) if length is not None and length.isdigit() else None
        if known is not None and known > limit:
            raise _too_large(limit)
        buf = bytearray(known or 0)
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            if chunk:
                end = size + len(chunk)
                if end > limit:
                    raise _too_large(limit)
                if known is not None and end <= known:
                    buf[size:end] = chunk
                else:
                    del buf[size:]
                    buf += chunk
                size = end
            if not message.get("more_body", False):
                break
        del buf[size:]  # a body shorter than it said
        return buf

    def base_headers(self) -> Headers:
        value = self.request_id.encode()
        return [(name, value) for name in self.id_headers]

    async def start(self, status: int, headers: Headers, lines: bytes = b"") -> None:
        """The answer's status and headers; `lines`: header lines made by Crossway itself
        (each ending in CRLF, none that frames the body), which need no checking."""
        self.response_started = True
        message: Message = {"type": "http.response.start", "status": status, "headers": headers}
        if lines:
            if self.trusted_lines:
                message["trusted_lines"] = lines
            else:
                headers.extend(pairs_of(lines))
        await self.send(message)

    async def respond(
        self,
        status: int,
        body: bytes,
        headers: Headers | None = None,
        content_type: bytes = JSON,
        lines: bytes = b"",
    ) -> None:
        out = self.base_headers()
        out.append((b"content-type", content_type))
        # a known length spares the server chunked framing
        out.append((b"content-length", b"%d" % len(body)))
        if headers:
            out.extend(headers)
        await self.start(status, out, lines)
        await self.send({"type": "http.response.body", "body": body})

    async def respond_error(
        self, err: GatewayError, render: Callable[[GatewayError, str | None], bytes]
    ) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
        if err.retryable is not None:
            headers.append((b"x-should-retry", b"true" if err.retryable else b"false"))
        await self.respond(err.status, render(err, self.request_id), headers)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than the limit of {limit} bytes",
        code="request_too_large",
        retryable=False,
    )
