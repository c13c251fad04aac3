"""OpenAI chat completions (the answers) ⇄ the canonical `ChatResponse`.

Reasoning, which Chat Completions has no field for, goes out as `reasoning_content` (the
DeepSeek-style extension most clients read) and, when signed, as `thinking_blocks` so that a
client can hand it back on its next turn.
"""

from __future__ import annotations

import time
from typing import Any

from crossway.dialects.common import data_url, made_up_id, split_data_url
from crossway.dialects.openai.usage import usage_from, usage_object
from crossway.ir.chat import (
    ChatResponse,
    FinishReason,
    Image,
    Part,
    Reasoning,
    Text,
    ToolCall,
    arguments_text,
)

FINISH_FROM_OPENAI: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
FINISH_TO_OPENAI: dict[FinishReason, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "pause": "stop",
}


def finish_from(value: Any) -> FinishReason:
    return FINISH_FROM_OPENAI.get(value, "stop") if isinstance(value, str) else "stop"


def decode_response(data: dict[str, Any]) -> ChatResponse:
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Part] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(Text(content))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    for i, call in enumerate(message.get("tool_calls") or []):
        if not isinstance(call, dict):
            continue
        fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        args = fn.get("arguments")
        parts.append(
            ToolCall(
                id=str(call.get("id") or made_up_id("call_", data.get("id"), i)),
                name=str(fn.get("name") or ""),
                arguments=args if isinstance(args, str) else arguments_text(args),
                signature=signature_of(call),
            )
        )
    for image in message.get("images") or ():
        url = (image.get("image_url") or {}).get("url") if isinstance(image, dict) else None
        inline = split_data_url(url) if isinstance(url, str) else None
        if inline is not None:
            parts.append(Image(data=inline[1], media_type=inline[0]))
    finish = finish_from(choice.get("finish_reason"))
    if refusal and finish == "stop":
        finish = "content_filter"
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        parts=parts,
        finish=finish,
        usage=usage_from(data),
        created=data.get("created") if isinstance(data.get("created"), int) else None,
    )


def completion_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    text = "".join(p.text for p in resp.parts if isinstance(p, Text))
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    calls = [p for p in resp.parts if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = [tool_call(c) for c in calls]
    elif not text:
        message["content"] = ""
    images = [p for p in resp.parts if isinstance(p, Image) and p.data]
    if images:  # generated images, as OpenRouter returns them
        message["images"] = [
            {
                "type": "image_url",
                "image_url": {"url": data_url(i.media_type or "image/png", i.data or "")},
            }
            for i in images
        ]
    thoughts = [p for p in resp.parts if isinstance(p, Reasoning)]
    if thoughts:
        message["reasoning_content"] = "".join(r.text for r in thoughts)
        signed = [thinking_block(r) for r in thoughts if r.signature or r.redacted]
        if signed:
            message["thinking_blocks"] = signed
    out: dict[str, Any] = {
        "id": completion_id(resp.id),
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_TO_OPENAI[resp.finish],
            }
        ],
    }
    if resp.usage is not None:
        out["usage"] = usage_object(resp.usage)
    return out


def tool_call(call: ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if call.signature:  # Gemini's, where Google's own OpenAI layer puts it
        out["extra_content"] = {"google": {"thought_signature": call.signature}}
    return out


def signature_of(call: dict[str, Any]) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) else None


def thinking_block(r: Reasoning) -> dict[str, Any]:
    if r.redacted is not None:
        return {"type": "redacted_thinking", "data": r.redacted}
    return {"type": "thinking", "thinking": r.text, "signature": r.signature}
