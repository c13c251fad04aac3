"""Anthropic's Messages wire format: errors, usage, requests, responses, streams."""

from crossway.dialects.anthropic.errors import error_body, parse_error, stream_error_event

__all__ = ["error_body", "parse_error", "stream_error_event"]
