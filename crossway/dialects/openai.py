"""OpenAI's chat-completions wire format: errors, usage, and stream events."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.errors import GatewayError
from crossway.ir import Usage


def error_object(err: GatewayError) -> dict[str, Any]:
    return {
        "error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}
    }


def error_body(err: GatewayError) -> bytes:
    return orjson.dumps(error_object(err))


def stream_error_event(err: GatewayError) -> bytes:
    """The in-stream error the openai SDK raises on: a data event with an `error` key."""
    return b"data: " + error_body(err) + b"\n\n"


def parse_error(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an OpenAI-shaped error body, or None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error: dict[str, Any] = data["error"]
        return error
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(data: Any) -> Usage | None:
    """Usage from a chat completion, an embeddings response or a stream chunk."""
    if not isinstance(data, dict):
        return None
    raw = data.get("usage")
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        cached_tokens=_int(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, dict)
        else 0,
        reasoning_tokens=_int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0,
    )
