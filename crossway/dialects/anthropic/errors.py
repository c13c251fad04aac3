"""Anthropic's error shape: `{"type":"error","error":{"type","message"},"request_id"}`."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.common import parse_error
from crossway.errors import GatewayError

# HTTP status -> Anthropic's error.type
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(err: GatewayError) -> str:
    found = _TYPE_BY_STATUS.get(err.status)
    if found is not None:
        return found
    return "invalid_request_error" if 400 <= err.status < 500 else "api_error"


def error_object(err: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(err), "message": err.message},
    }
    if request_id is not None:
        out["request_id"] = request_id
    return out


def error_body(err: GatewayError, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_object(err, request_id))


def stream_error_event(err: GatewayError) -> bytes:
    """The `error` event the anthropic SDK raises on."""
    return b"event: error\ndata: " + orjson.dumps(error_object(err)) + b"\n\n"


__all__ = ["error_body", "parse_error", "stream_error_event"]
