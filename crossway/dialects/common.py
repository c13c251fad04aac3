"""Small helpers every dialect's decoders and encoders share."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from crossway.errors import InvalidRequest
from crossway.ir.stream import BlockKind, BlockStart, BlockStop, Event


def count_of(value: Any) -> int:
    """A token count as an upstream reported it: a whole number, or 0 for anything else (a
    negative count would lower the key's spend and token counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def invalid(param: str, message: str, code: str | None = None) -> InvalidRequest:
    """A 400 naming the field at fault; SDKs are told not to retry it."""
    return InvalidRequest(f"{param}: {message}", param=param, code=code, retryable=False)


def untranslatable(param: str, what: str, target: str) -> InvalidRequest:
    """A 400 for something the chosen upstream's wire format cannot carry."""
    return InvalidRequest(
        f"{param}: {what} cannot be sent to a {target}-format upstream",
        param=param,
        code="unsupported_for_upstream",
        retryable=False,
    )


def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise invalid(param, f"must be {what}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def optional_int(data: dict[str, Any], key: str, param: str | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    return int(expect(value, int, param or key, "an integer"))


def optional_number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    return float(expect(value, (int, float), key, "a number"))


def optional_str(data: dict[str, Any], key: str, param: str | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return str(expect(value, str, param or key, "a string"))


_DATA_URL = re.compile(r"^data:([\w.+/-]+)?(;[\w=.+-]+)*?;base64,", re.ASCII)


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:<mime>;base64,<payload>` → (mime, payload); None for any other URL."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group(1) or "application/octet-stream", url[match.end() :]


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


_SAFE_ID = re.compile(r"[^a-zA-Z0-9_-]")


def safe_tool_id(call_id: str) -> str:
    """Anthropic accepts tool ids of `[a-zA-Z0-9_-]+` only; other characters become `_`."""
    return _SAFE_ID.sub("_", call_id) or "call"


def made_up_id(prefix: str, *parts: object) -> str:
    """A deterministic id for something that came without one."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:24]
    return f"{prefix}{digest}"


def parse_error(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an error body; OpenAI's and Anthropic's both have one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error: dict[str, Any] = data["error"]
        return error
    return None


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a caller wants its stream written."""

    include_usage: bool = True  # OpenAI: the usage chunk at the end
    json_array: bool = False  # Gemini without `alt=sse`: one streamed JSON array


class Blocks:
    """The block numbering of a stream decoder: one open block at a time, numbered 0, 1, 2…
    (the canonical stream grammar), opened and closed as a dialect's deltas change kind."""

    __slots__ = ("next", "open")

    def __init__(self) -> None:
        self.open: tuple[BlockKind, int] | None = None  # (kind, index) of the open block
        self.next = 0

    def ensure(self, kind: BlockKind, out: list[Event]) -> int:
        """The index of an open block of this kind, opening one (closing another) if needed."""
        if self.open is not None and self.open[0] == kind:
            return self.open[1]
        self.close(out)
        index = self.take()
        self.open = (kind, index)
        out.append(BlockStart(index, kind))
        return index

    def take(self) -> int:
        index = self.next
        self.next += 1
        return index

    def close(self, out: list[Event]) -> None:
        if self.open is not None:
            out.append(BlockStop(self.open[1]))
            self.open = None
