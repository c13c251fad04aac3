"""Gemini GenerateContentResponse ⇄ the canonical `ChatResponse`.

Answers come from Google's servers, always in camelCase (only requests need snake_case read).

Gemini says STOP for an answer that calls tools, so a decoded answer with calls finishes as
`tool_calls`, as every other dialect expects (MAX_TOKENS and safety reasons are kept).
"""

from __future__ import annotations

from typing import Any

from crossway.dialects.common import made_up_id
from crossway.dialects.gemini.usage import usage_from, usage_object
from crossway.ir.chat import (
    ChatResponse,
    FinishReason,
    Image,
    Part,
    Reasoning,
    Text,
    ToolCall,
    arguments_object,
    arguments_text,
)

_FILTERED = {"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
             "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "NO_IMAGE", "IMAGE_RECITATION",
             "IMAGE_OTHER"}  # fmt: skip
FINISH_TO_GEMINI: dict[FinishReason, str] = {
    "stop": "STOP",
    "stop_sequence": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "pause": "STOP",
}


def finish_from(value: Any, saw_tool: bool) -> FinishReason:
    if value == "MAX_TOKENS":
        return "length"
    if value in _FILTERED:
        return "content_filter"
    return "tool_calls" if saw_tool else "stop"


def call_id(response_id: str, index: int, name: str) -> str:
    """Gemini's calls come without ids: a deterministic one, so a client can answer it."""
    return made_up_id("call_", response_id, index, name)


def decode_parts(parts: Any, response_id: str, start: int = 0) -> list[Part]:
    out: list[Part] = []
    for i, part in enumerate(parts or (), start):
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = str(call.get("name") or "")
            out.append(
                ToolCall(
                    str(call.get("id") or call_id(response_id, i, name)),
                    name,
                    arguments_text(call.get("args") or {}),
                    signature,
                )
            )
        elif isinstance(part.get("inlineData"), dict):  # a generated image
            inline = part["inlineData"]
            out.append(Image(data=str(inline.get("data") or ""), media_type=inline.get("mimeType")))
        elif part.get("thought") and part.get("text"):
            out.append(Reasoning(str(part["text"])))
        elif part.get("text"):
            out.append(Text(str(part["text"])))
    return out


def decode_response(data: dict[str, Any]) -> ChatResponse:
    response_id = str(data.get("responseId") or "")
    candidates = data.get("candidates") or []
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = first.get("content") or {}
    parts = decode_parts(content.get("parts"), response_id)
    saw_tool = any(isinstance(p, ToolCall) for p in parts)
    finish = finish_from(first.get("finishReason"), saw_tool)
    feedback = data.get("promptFeedback")
    if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
        finish = "content_filter"
    return ChatResponse(
        id=response_id,
        model=str(data.get("modelVersion") or ""),
        parts=parts,
        finish=finish,
        usage=usage_from(data.get("usageMetadata")),
    )


def encode_parts(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Reasoning) and part.text:
            out.append({"text": part.text, "thought": True})
        elif isinstance(part, Text) and part.text:
            out.append({"text": part.text})
        elif isinstance(part, Image) and part.data:
            out.append(
                {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
            )
        elif isinstance(part, ToolCall):
            encoded: dict[str, Any] = {
                "functionCall": {
                    "id": part.id,
                    "name": part.name,
                    "args": arguments_object(part.arguments),
                }
            }
            if part.signature:
                encoded["thoughtSignature"] = part.signature
            out.append(encoded)
    return out


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    parts = encode_parts(resp.parts) or [{"text": ""}]
    out: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": FINISH_TO_GEMINI[resp.finish],
                "index": 0,
            }
        ],
        "modelVersion": model,
        "responseId": resp.id,
    }
    if resp.usage is not None:
        out["usageMetadata"] = usage_object(resp.usage)
    return out
