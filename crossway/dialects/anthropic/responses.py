"""Anthropic Messages answers ⇄ the canonical `ChatResponse`."""

from __future__ import annotations

import os
from typing import Any

from crossway.dialects.anthropic.usage import usage_from, usage_object
from crossway.dialects.common import safe_tool_id
from crossway.ir.chat import (
    ChatResponse,
    FinishReason,
    Part,
    Reasoning,
    Text,
    ToolCall,
    arguments_object,
    arguments_text,
)

FINISH_FROM_ANTHROPIC: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "pause_turn": "pause",
    "refusal": "content_filter",
}
FINISH_TO_ANTHROPIC: dict[FinishReason, str] = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "pause": "pause_turn",
}


def finish_from(value: Any) -> FinishReason:
    return FINISH_FROM_ANTHROPIC.get(value, "stop") if isinstance(value, str) else "stop"


def message_id(upstream_id: str) -> str:
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (safe_tool_id(upstream_id) if upstream_id else os.urandom(12).hex())


def decode_response(data: dict[str, Any]) -> ChatResponse:
    parts: list[Part] = []
    for block in data.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            parts.append(Text(str(block["text"])))
        elif kind == "thinking":
            parts.append(Reasoning(str(block.get("thinking") or ""), block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(Reasoning(redacted=str(block.get("data") or "")))
        elif kind == "tool_use":
            parts.append(
                ToolCall(
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    arguments_text(block.get("input")),
                )
            )
        # server-tool blocks have no meaning for other dialects' clients: left out
    stop_sequence = data.get("stop_sequence")
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        parts=parts,
        finish=finish_from(data.get("stop_reason")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=usage_from(data.get("usage")),
    )


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in resp.parts:
        if isinstance(part, Text) and part.text:
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            content.append(
                {
                    "type": "tool_use",
                    "id": safe_tool_id(part.id),
                    "name": part.name,
                    "input": arguments_object(part.arguments),
                }
            )
        elif isinstance(part, Reasoning):
            if part.redacted is not None:
                content.append({"type": "redacted_thinking", "data": part.redacted})
            else:  # unsigned (another vendor's) reasoning is shown; it is never replayed
                content.append(
                    {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
                )
    finish = resp.finish
    if finish == "stop" and any(isinstance(p, ToolCall) for p in resp.parts):
        finish = "tool_calls"
    return {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_ANTHROPIC[finish],
        "stop_sequence": resp.stop_sequence if finish == "stop_sequence" else None,
        "usage": usage_object(resp.usage) if resp.usage else usage_object_zero(),
    }


def usage_object_zero() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
