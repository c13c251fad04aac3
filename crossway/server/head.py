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
from collections.abc import Sequence
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
# names already seen to be tokens, learnt once (an app that makes names up cannot grow these
# forever): "plain" ones are lower-case and none of transfer-encoding and connection, so an
# answer with plain names alone is framed by its content-length or nothing
_plain_names: set[bytes] = set()
_other_names: set[bytes] = set()
_MAX_NAMES = 4096
_NOT_PLAIN = (b"transfer-encoding", b"connection")


class BadHeader(RuntimeError):
    """The app handed over a header that HTTP cannot carry."""


Framing = tuple[int | None, bool, bool]  # content-length, chunked, connection: close


def _learn_names(headers: Sequence[Sequence[bytes]]) -> bool:
    """Check the names not seen before; whether all are plain."""
    plain = True
    for name in map(_name_of, headers):
        if name in _plain_names:
            continue
        if name not in _other_names:
            if not isinstance(name, bytes) or _TOKEN.fullmatch(name) is None:
                raise BadHeader(f"invalid header name {name!r}")
            if name == name.lower() and name not in _NOT_PLAIN:
                if len(_plain_names) < _MAX_NAMES:
                    _plain_names.add(name)
                    continue
            elif len(_other_names) < _MAX_NAMES:
                _other_names.add(name)
        plain = False
    return plain


def header_block(headers: Sequence[Sequence[bytes]]) -> tuple[bytes, bool]:
    """`name: value` lines joined by CRLF (no final CRLF), after checking that they are
    what they look like: names that are tokens, no control character in any value. With
    it, whether every name is plain (see `framing`)."""
    try:
        plain = _plain_names.issuperset(map(_name_of, headers)) or _learn_names(headers)
        block = b"\r\n".join(map(b": ".join, headers))
    except TypeError:
        raise BadHeader("header names and values must be bytes") from None
    # the join put len - 1 CRLFs in: any other control character came from a value
    inserted = 2 * (len(headers) - 1) if headers else 0
    if len(block) - len(block.translate(None, _CONTROLS)) != inserted:
        raise BadHeader("a header value holds a control character (CR, LF, NUL, ...)")
    return block, plain


_NO_FRAMING: Framing = (None, False, False)


def _value(block: bytes, line_start: bytes) -> bytes | None:
    """The value of the first header whose line starts with `line_start` (a lower-case name
    and its colon, after a LF)."""
    at = block.find(line_start)
    if at >= 0:
        at += len(line_start)
    elif block.startswith(line_start[1:]):
        at = len(line_start) - 1
    else:
        return None
    end = block.find(b"\r", at)
    return (block[at:end] if end >= 0 else block[at:]).strip()


def framing(block: bytes, plain: bool) -> Framing:
    """content-length, transfer-encoding: chunked and connection: close, if the app set
    them. With plain names (`header_block`) only content-length can be there; otherwise
    names are searched without regard to case, since some apps do not lower-case them."""
    if plain:
        value = _value(block, b"\ncontent-length:")
        if value is None:
            return _NO_FRAMING
        chunked = close = False
    else:
        block = block.lower()
        value = _value(block, b"\ncontent-length:")
        coding = _value(block, b"\ntransfer-encoding:")
        chunked = coding is not None and b"chunked" in coding
        connection = _value(block, b"\nconnection:")
        close = connection is not None and b"close" in connection
    if value is None:
        return (None, chunked, close)
    if not value.isdigit():
        raise BadHeader(f"invalid content-length {value!r}")
    return (int(value), chunked, close)


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
