"""A response's head: the status line, the app's headers checked once as a block, framing.

uvicorn checks every header of every answer with two regular expressions and lower-cases it
in Python, about 0.35 µs a header; a keyed answer has ~17. Here the whole block is joined and
checked by C-level calls whose cost hardly grows with the number of headers: names against
those already seen to be valid tokens, and the block for control characters other than the
line breaks put there by the join. A header that would split the answer (a CR or LF in a
value, a name that is not a token) is refused before anything is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from operator import itemgetter

STATUS_LINES: dict[int, bytes] = {
    status: b"HTTP/1.1 %d %s\r\n"
    % (
        status,
        HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b"",
    )
    for status in range(100, 600)
}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# every control character but tab: none may appear in a name or a value
_CONTROLS = bytes(range(9)) + bytes(range(10, 32)) + b"\x7f"
_name_of = itemgetter(0)
_valid_names: set[bytes] = set()
_MAX_NAMES = 4096  # names learnt once; an app that makes names up cannot grow this forever


class BadHeader(RuntimeError):
    """The app handed over a header that HTTP cannot carry."""


class Framing:
    """How the body of one answer is delimited, read off its headers."""

    __slots__ = ("chunked", "close", "length")

    def __init__(self, length: int | None, chunked: bool, close: bool) -> None:
        self.length = length
        self.chunked = chunked
        self.close = close


def _check_names(headers: Sequence[Sequence[bytes]]) -> None:
    for name in map(_name_of, headers):
        if name not in _valid_names:
            if not isinstance(name, bytes) or _TOKEN.fullmatch(name) is None:
                raise BadHeader(f"invalid header name {name!r}")
            if len(_valid_names) < _MAX_NAMES:
                _valid_names.add(name)


def header_block(headers: Sequence[Sequence[bytes]]) -> bytes:
    """`name: value` lines joined by CRLF (no final CRLF), after checking that they are
    what they look like: names that are tokens, no control character in any value."""
    try:
        if not _valid_names.issuperset(map(_name_of, headers)):
            _check_names(headers)
        block = b"\r\n".join(map(b": ".join, headers))
    except TypeError:
        raise BadHeader("header names and values must be bytes") from None
    # the join put len - 1 CRLFs in: any other control character came from a value
    inserted = 2 * (len(headers) - 1) if headers else 0
    if len(block) - len(block.translate(None, _CONTROLS)) != inserted:
        raise BadHeader("a header value holds a control character (CR, LF, NUL, ...)")
    return block


def framing(block: bytes) -> Framing:
    """content-length, transfer-encoding: chunked and connection: close, if the app set them
    (ASGI names are lower-case; the search is not, since some apps are not)."""
    low = b"\r\n" + block.lower()
    length: int | None = None
    at = low.find(b"\r\ncontent-length:")
    if at >= 0:
        end = low.find(b"\r\n", at + 2)
        value = low[at + 17 : end if end >= 0 else len(low)].strip()
        if not value.isdigit():
            raise BadHeader(f"invalid content-length {value!r}")
        length = int(value)
    chunked = False
    at = low.find(b"\r\ntransfer-encoding:")
    if at >= 0:
        end = low.find(b"\r\n", at + 2)
        chunked = b"chunked" in low[at : end if end >= 0 else len(low)]
    close = False
    at = low.find(b"\r\nconnection:")
    if at >= 0:
        end = low.find(b"\r\n", at + 2)
        close = b"close" in low[at : end if end >= 0 else len(low)]
    return Framing(length, chunked, close)


class DateLine:
    """`date: ...\\r\\n`, which HTTP/1.1 asks of a server with a clock, made once a second."""

    __slots__ = ("_second", "line")

    def __init__(self) -> None:
        self._second = -1
        self.line = b""
        self.refresh()

    def refresh(self) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self.line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"


def simple_head(status: int, lines: Iterable[bytes]) -> bytes:
    """A head the server writes itself (400, 431, 500, 100 Continue): fixed, trusted lines."""
    return STATUS_LINES[status] + b"".join(lines) + b"\r\n"
