"""OpenAI's chat-completions wire format: errors, usage, requests, responses, streams."""

from crossway.dialects.openai.errors import (
    error_body,
    error_object,
    parse_error,
    stream_error_event,
)
from crossway.dialects.openai.usage import StreamUsage, usage_from

__all__ = [
    "StreamUsage",
    "error_body",
    "error_object",
    "parse_error",
    "stream_error_event",
    "usage_from",
]
