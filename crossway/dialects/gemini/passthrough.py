"""Reading usage off a Gemini stream relayed byte for byte, and how it ended."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.common import StreamOptions
from crossway.dialects.gemini.usage import usage_from
from crossway.dialects.openai.requests import UpstreamOptions
from crossway.dialects.sse import event_data
from crossway.ir import Usage


class StreamUsage:
    """The last `usageMetadata` with a total wins (each chunk may carry one)."""

    __slots__ = ("usage",)

    def __init__(self, options: StreamOptions | None = None) -> None:
        self.usage: Usage | None = None

    def process(self, out: bytes) -> bytes:
        if b'"usageMetadata"' not in out:
            return out
        normal = out.replace(b"\r\n", b"\n") if b"\r" in out else out
        for raw_event in reversed(normal.split(b"\n\n")):
            if b"totalTokenCount" not in raw_event:
                continue
            data = event_data(raw_event)
            try:
                parsed = orjson.loads(data) if data is not None else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                self.usage = usage_from(parsed.get("usageMetadata"))
                break
        return out


def stream_outcome(final_event: bytes) -> str:
    if b'"error"' in final_event[:200]:
        return "error"
    if b"finishReason" in final_event:
        return "done"
    return "incomplete"


def prepare_passthrough(
    payload: dict[str, Any], model: str, options: UpstreamOptions, wants_usage: bool
) -> None:
    """Nothing to change: Gemini's model is in the URL, and its streams carry usage."""
