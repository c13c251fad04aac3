"""Reading usage off an Anthropic stream that is relayed byte for byte."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.anthropic.usage import usage_from
from crossway.dialects.openai.requests import UpstreamOptions
from crossway.dialects.sse import event_data
from crossway.ir import Usage


class StreamUsage:
    """Only events that mention usage (`message_start`, `message_delta`) are parsed."""

    __slots__ = ("usage",)

    def __init__(self, strip: bool = False) -> None:
        self.usage: Usage | None = None

    def process(self, out: bytes) -> bytes:
        if b'"usage"' not in out:
            return out
        normal = out.replace(b"\r\n", b"\n") if b"\r" in out else out
        for raw_event in normal.split(b"\n\n"):
            if b'"usage"' not in raw_event:
                continue
            data = event_data(raw_event)
            try:
                parsed = orjson.loads(data) if data is not None else None
            except orjson.JSONDecodeError:
                continue
            if not isinstance(parsed, dict):
                continue
            raw = parsed.get("usage")
            if parsed.get("type") == "message_start" and isinstance(parsed.get("message"), dict):
                raw = parsed["message"].get("usage")
            self.usage = usage_from(raw, self.usage)
        return out


def stream_outcome(final_event: bytes) -> str:
    """How a relayed stream ended, from its final event: done, error or incomplete."""
    if b"message_stop" in final_event:
        return "done"
    if b"event: error" in final_event or b'"type":"error"' in final_event:
        return "error"
    return "incomplete"


def prepare_passthrough(
    payload: dict[str, Any], model: str, options: UpstreamOptions, wants_usage: bool
) -> None:
    """Only the model changes: Anthropic streams always carry usage."""
    payload["model"] = model
