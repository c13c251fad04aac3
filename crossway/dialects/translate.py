"""A stream translated from one wire format to another, one batch of complete events at a time.

Bytes in (complete SSE events, as `EventCutter` yields them), bytes out. It remembers the
final usage and any failure the upstream reported, for the usage record.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from crossway.dialects.common import StreamOptions
from crossway.dialects.registry import Dialect
from crossway.dialects.sse import event_data
from crossway.errors import GatewayError
from crossway.ir import Usage
from crossway.ir.stream import (
    BlockStart,
    Failed,
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolArgsDelta,
)

_DELTAS = frozenset({TextDelta, ReasoningDelta, ToolArgsDelta})


class StreamTranslator:
    __slots__ = ("decoder", "encoder", "failure", "redact", "renamed_tools", "usage")

    def __init__(
        self,
        upstream: Dialect,
        client: Dialect,
        model: str,
        options: StreamOptions,
        redact: Callable[[str], str] = str,
        renamed_tools: dict[str, str] | None = None,
    ) -> None:
        self.renamed_tools = renamed_tools or {}  # names the upstream was given instead
        self.redact = redact  # upstream messages may quote what must not reach the caller
        self.decoder = upstream.stream_decoder()
        self.encoder = client.stream_encoder(model, options)
        self.usage: Usage | None = None
        self.failure: GatewayError | None = None

    @property
    def finished(self) -> bool:
        return self.decoder.finished

    def feed(self, raw_events: bytes) -> bytes:
        out = []
        encode = self.encoder.encode
        for data in event_payloads(raw_events):
            if self.decoder.finished:
                break  # nothing may follow the end in the caller's format
            if data == b"[DONE]":
                events = self.decoder.done()
            else:
                try:
                    events = self.decoder.feed(orjson.loads(data))
                except orjson.JSONDecodeError:
                    continue  # a keep-alive or a line we cannot read: nothing to pass on
            for event in events:
                if type(event) in _DELTAS:  # most events: nothing to note, straight through
                    out.append(encode(event))
                    continue
                if isinstance(event, Finish):
                    self.usage = event.usage
                elif isinstance(event, BlockStart) and event.name in self.renamed_tools:
                    event.name = self.renamed_tools[event.name]
                elif isinstance(event, Start) and event.usage is not None:
                    self.usage = event.usage  # what a stream that fails later still used
                elif isinstance(event, Failed):
                    event.error.message = self.redact(event.error.message)
                    self.failure = event.error
                out.append(encode(event))
        return b"".join(out)

    def end(self) -> bytes:
        """The upstream's body ended: a format without an end marker finishes now."""
        if self.decoder.finished or self.failure is not None or not self.decoder.ends_at_eof:
            return b""
        out = []
        for event in self.decoder.done():
            if isinstance(event, Finish):
                self.usage = event.usage
            out.append(self.encoder.encode(event))
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        """The upstream broke off: the caller's in-stream error event."""
        self.failure = error
        return self.encoder.encode(Failed(error))


def event_payloads(raw_events: bytes) -> list[bytes]:
    """The `data` of each complete event."""
    if not raw_events:
        return []
    if b"\r" in raw_events:
        raw_events = raw_events.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out = []
    for raw in raw_events.split(b"\n\n"):
        # the common case: one `data:` line, last in its event (after an `event:` line)
        at = raw.find(b"data:")
        if at >= 0 and raw.find(b"\n", at) < 0 and (at == 0 or raw[at - 1] == 10):
            data = raw[at + 5 :].lstrip(b" ")
        else:
            data = event_data(raw) or b""
        if data:
            out.append(data)
    return out
