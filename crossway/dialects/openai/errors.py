"""OpenAI's error shape, as an answer and as an in-stream event."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.common import parse_error
from crossway.errors import GatewayError


def error_object(err: GatewayError) -> dict[str, Any]:
    return {
        "error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}
    }


def error_body(err: GatewayError, request_id: str | None = None) -> bytes:
    """OpenAI's error body (the request id travels in the `x-request-id` header)."""
    return orjson.dumps(error_object(err))


def stream_error_event(err: GatewayError) -> bytes:
    """The in-stream error the openai SDK raises on: a data event with an `error` key."""
    return b"data: " + error_body(err) + b"\n\n"


__all__ = ["error_body", "error_object", "parse_error", "stream_error_event"]
