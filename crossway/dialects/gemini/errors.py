"""Gemini's error shape: `{"error": {"code", "message", "status"}}` (google.rpc codes)."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.errors import GatewayError

# HTTP status -> google.rpc status name
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def http_status(status: int) -> int:
    """The status a Gemini client gets: Anthropic's 529 (overloaded) is 503 UNAVAILABLE, which
    google-genai's retry options know."""
    return 503 if status == 529 else status


def status_name(status: int) -> str:
    status = http_status(status)
    return STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def error_object(err: GatewayError) -> dict[str, Any]:
    code = http_status(err.status)
    return {"error": {"code": code, "message": err.message, "status": status_name(code)}}


def error_body(err: GatewayError, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_object(err))


def stream_error_event(err: GatewayError) -> bytes:
    """google-genai raises on a stream chunk that starts with `{"error":`."""
    return b"data: " + orjson.dumps(error_object(err)) + b"\r\n\r\n"
