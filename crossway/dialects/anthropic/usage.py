"""Anthropic's usage object. Its `input_tokens` excludes cached tokens; ours includes them."""

from __future__ import annotations

from typing import Any

from crossway.dialects.common import count_of
from crossway.ir import Usage


def usage_from(raw: Any, into: Usage | None = None) -> Usage | None:
    """Usage from a Message's (or a stream event's) `usage`; fields present update `into`."""
    if not isinstance(raw, dict):
        return into
    usage = into if into is not None else Usage()
    fresh_before = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    cache_read = raw.get("cache_read_input_tokens")
    cache_write = raw.get("cache_creation_input_tokens")
    if cache_read is not None:
        usage.cached_tokens = count_of(cache_read)
    if cache_write is not None:
        usage.cache_write_tokens = count_of(cache_write)
    fresh = raw.get("input_tokens")
    fresh_now = count_of(fresh) if fresh is not None else fresh_before
    usage.prompt_tokens = fresh_now + usage.cached_tokens + usage.cache_write_tokens
    if "output_tokens" in raw:
        usage.completion_tokens = count_of(raw.get("output_tokens"))
    details = raw.get("output_tokens_details")
    if isinstance(details, dict) and "thinking_tokens" in details:
        usage.reasoning_tokens = count_of(details.get("thinking_tokens"))
    return usage


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": max(
            usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0
        ),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }
