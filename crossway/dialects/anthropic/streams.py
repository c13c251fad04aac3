"""Anthropic Messages event streams ⇄ canonical stream events.

Decoding renumbers blocks (server-tool blocks, which other dialects cannot show, are skipped)
and merges usage from `message_start` and the cumulative `message_delta`. Encoding writes
`message_start` with what is known up front and the full usage in `message_delta`, which is
where OpenAI and Gemini upstreams let us know it.
"""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.anthropic.errors import stream_error_event
from crossway.dialects.anthropic.responses import (
    FINISH_TO_ANTHROPIC,
    finish_from,
    message_id,
    usage_object_zero,
)
from crossway.dialects.anthropic.usage import usage_from, usage_object
from crossway.dialects.common import safe_tool_id
from crossway.errors import UpstreamError
from crossway.ir.chat import FinishReason, arguments_text
from crossway.ir.stream import (
    BlockKind,
    BlockStart,
    BlockStop,
    Event,
    Failed,
    Finish,
    ImageOutput,
    ReasoningDelta,
    SignatureDelta,
    Start,
    TextDelta,
    ToolArgsDelta,
)
from crossway.ir.usage import Usage

# Anthropic error.type -> the HTTP status it stands for
STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_BLOCK_KINDS: dict[str, BlockKind] = {
    "text": "text",
    "thinking": "reasoning",
    "redacted_thinking": "reasoning",
    "tool_use": "tool_call",
}


class StreamDecoder:
    ends_at_eof = False
    """Feed it each event's parsed JSON (its `type` says which event it is)."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self._blocks: dict[int, int] = {}  # upstream block index -> ours
        self._next = 0
        self._finish: FinishReason = "stop"
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None

    def feed(self, data: Any) -> list[Event]:
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "content_block_delta":
            index = self._blocks.get(data.get("index", -1))
            delta = data.get("delta") or {}
            if index is None:
                return []
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [TextDelta(index, str(delta.get("text") or ""))]
            if dtype == "input_json_delta":
                part = delta.get("partial_json")
                return [ToolArgsDelta(index, part)] if part else []
            if dtype == "thinking_delta":
                return [ReasoningDelta(index, str(delta.get("thinking") or ""))]
            if dtype == "signature_delta":
                return [SignatureDelta(index, str(delta.get("signature") or ""))]
            return []
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            index = self._blocks.get(data.get("index", -1))
            return [BlockStop(index)] if index is not None else []
        if kind == "message_start":
            message = data.get("message") or {}
            self.started = True
            self._usage = usage_from(message.get("usage"))
            start_usage = Usage(**_fields(self._usage)) if self._usage else None
            return [
                Start(str(message.get("id") or ""), str(message.get("model") or ""), start_usage)
            ]
        if kind == "message_delta":
            delta = data.get("delta") or {}
            self._finish = finish_from(delta.get("stop_reason"))
            sequence = delta.get("stop_sequence")
            self._stop_sequence = sequence if isinstance(sequence, str) else None
            self._usage = usage_from(data.get("usage"), self._usage)
            return []
        if kind == "message_stop":
            self.finished = True
            return [Finish(self._finish, self._usage, self._stop_sequence)]
        if kind == "error":
            self.finished = True
            error = data.get("error") or {}
            etype = str(error.get("type") or "api_error")
            status = STATUS_BY_TYPE.get(etype, 500)
            failure = UpstreamError(
                f"the upstream reported an error in the stream: {error.get('message')}",
                vendor="anthropic",
                status=status,
                kind=etype,
            )
            return [Failed(failure)]
        return []  # ping, and events this version does not know

    def done(self) -> list[Event]:
        """The byte stream ended; only meaningful when `message_stop` came (see `finished`)."""
        return []

    def _block_start(self, data: dict[str, Any]) -> list[Event]:
        block = data.get("content_block") or {}
        kind = _BLOCK_KINDS.get(str(block.get("type")))
        if kind is None:
            return []  # server-tool blocks: no equivalent elsewhere
        index = self._next
        self._next += 1
        self._blocks[data.get("index", -1)] = index
        btype = block.get("type")
        if btype == "tool_use":
            out: list[Event] = [
                BlockStart(index, kind, str(block.get("id") or ""), str(block.get("name") or ""))
            ]
            if block.get("input"):
                out.append(ToolArgsDelta(index, arguments_text(block["input"])))
            return out
        if btype == "redacted_thinking":
            return [BlockStart(index, kind, redacted=str(block.get("data") or ""))]
        out = [BlockStart(index, kind)]
        if btype == "text" and block.get("text"):
            out.append(TextDelta(index, str(block["text"])))
        return out


def _fields(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _stop(index: int) -> bytes:
    return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})


class StreamEncoder:
    """Canonical events → Anthropic's `event:`/`data:` frames."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._index: dict[int, int] = {}
        self._open: int | None = None
        self._saw_tool = False

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._delta(event.index, {"type": "text_delta", "text": event.text})
        if isinstance(event, ToolArgsDelta):
            return self._delta(
                event.index, {"type": "input_json_delta", "partial_json": event.json}
            )
        if isinstance(event, ReasoningDelta):
            return self._delta(event.index, {"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, SignatureDelta):
            return self._delta(
                event.index, {"type": "signature_delta", "signature": event.signature}
            )
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            index = self._index.get(event.index)
            if index is None or index != self._open:
                return b""
            self._open = None
            return _stop(index)
        if isinstance(event, Start):
            self.model = event.model or self.model  # the model that answers, if it says
            usage = usage_object(event.usage) if event.usage else usage_object_zero()
            message: dict[str, Any] = {
                "id": message_id(event.id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            }
            return _event(b"message_start", {"type": "message_start", "message": message})
        if isinstance(event, Finish):
            return self._finish(event)
        if isinstance(event, Failed):
            return stream_error_event(event.error)
        if isinstance(event, ImageOutput):
            # Anthropic's Messages API has no image output (no assistant content block holds
            # an image), so it is dropped, as whole answers drop theirs; it opens no block and
            # takes no index, so the blocks around it stay numbered 0, 1, 2…
            return b""
        return b""

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        out = self._index.get(index)
        if out is None or out != self._open:
            return b""  # a block that is no longer open cannot take more in this format
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":'
            % out
            + orjson.dumps(delta)
            + b"}\n\n"
        )

    def _block_start(self, event: BlockStart) -> bytes:
        prefix = b""
        if self._open is not None:  # the grammar allows one open block; close a stray one
            prefix = _stop(self._open)
        index = self._index[event.index] = len(self._index)
        self._open = index
        block: dict[str, Any]
        if event.kind == "tool_call":
            self._saw_tool = True
            block = {
                "type": "tool_use",
                "id": safe_tool_id(event.id or f"toolu_{index}"),
                "name": event.name or "",
                "input": {},
            }
        elif event.kind == "reasoning":
            if event.redacted is not None:
                block = {"type": "redacted_thinking", "data": event.redacted}
            else:
                block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return prefix + _event(b"content_block_start", data)

    def _finish(self, event: Finish) -> bytes:
        out = b""
        if self._open is not None:
            out = _stop(self._open)
            self._open = None
        reason = event.reason
        if reason == "stop" and self._saw_tool:
            reason = "tool_calls"
        delta = {
            "stop_reason": FINISH_TO_ANTHROPIC[reason],
            "stop_sequence": event.stop_sequence if reason == "stop_sequence" else None,
        }
        usage = usage_object(event.usage) if event.usage else usage_object_zero()
        out += _event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + _event(b"message_stop", {"type": "message_stop"})
