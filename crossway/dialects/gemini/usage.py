"""Gemini's usageMetadata. Thoughts may or may not be inside candidatesTokenCount: when
prompt + candidates already make the total, they are (newer models); else they are added."""

from __future__ import annotations

from typing import Any

from crossway.dialects.common import count_of
from crossway.ir import Usage


def usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = count_of(raw.get("promptTokenCount")) + count_of(raw.get("toolUsePromptTokenCount"))
    candidates = count_of(raw.get("candidatesTokenCount"))
    thoughts = count_of(raw.get("thoughtsTokenCount"))
    total = raw.get("totalTokenCount")
    inclusive = isinstance(total, int) and prompt + candidates == total
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=candidates + (0 if inclusive else thoughts),
        cached_tokens=count_of(raw.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def usage_object(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


def response_usage(data: Any) -> Usage | None:
    """Usage of a GenerateContentResponse (or an embeddings answer, which has none)."""
    return usage_from(data.get("usageMetadata")) if isinstance(data, dict) else None
