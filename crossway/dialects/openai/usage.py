"""OpenAI's usage object, and the usage chunk of a relayed stream."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.dialects.common import count_of
from crossway.dialects.sse import event_data
from crossway.ir import Usage


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
        prompt_tokens=count_of(raw.get("prompt_tokens")),
        completion_tokens=count_of(raw.get("completion_tokens")),
        cached_tokens=count_of(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, dict)
        else 0,
        cache_write_tokens=count_of(prompt_details.get("cache_write_tokens"))
        if isinstance(prompt_details, dict)
        else 0,
        reasoning_tokens=count_of(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0,
    )


def media_usage_from(data: dict[str, Any]) -> Usage:
    """Usage of an image or a transcription answer: tokens (`input_tokens`, `output_tokens`:
    gpt-image-1, the gpt-4o transcribers) or whisper's seconds (`{"type": "duration",
    "seconds": n}`, or verbose_json's `duration`)."""
    usage = Usage()
    raw = data.get("usage")
    if isinstance(raw, dict):
        usage.prompt_tokens = count_of(raw.get("input_tokens"))
        usage.completion_tokens = count_of(raw.get("output_tokens"))
        if raw.get("type") == "duration":
            usage.audio_seconds = _seconds(raw.get("seconds"))
    if not usage.audio_seconds:
        usage.audio_seconds = _seconds(data.get("duration"))
    return usage


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 0.0


def usage_object(usage: Usage) -> dict[str, Any]:
    """Usage in OpenAI's shape; prompt + completion = total, details are parts of them."""
    details: dict[str, int] = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _null_usages(data: bytes) -> int:
    return data.count(b'"usage":null') + data.count(b'"usage": null')


class StreamUsage:
    """Finds the usage chunk as events pass, and hides it if only Crossway asked for it.

    With `include_usage` set by Crossway, every chunk carries `"usage":null` and one last
    chunk carries the usage with `choices: []`; a client that did not ask sees neither.
    """

    __slots__ = ("strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None

    def process(self, out: bytes) -> bytes:
        mentions = out.count(b'"usage"')
        if not mentions:
            return out
        if mentions == _null_usages(out):
            return self._drop_nulls(out)
        # some event carries real usage: only that one is parsed, the rest stay bytes
        if b"\r" in out:
            out = out.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        kept = []
        for raw_event in out.split(b"\n\n"):
            mentions = raw_event.count(b'"usage"')
            if mentions and mentions != _null_usages(raw_event):
                kept_event = self._one(raw_event)
            else:
                kept_event = self._drop_nulls(raw_event)
            if kept_event is not None:
                kept.append(kept_event)
        return b"\n\n".join(kept)

    def _drop_nulls(self, out: bytes) -> bytes:
        if not self.strip:
            return out
        return out.replace(b',"usage":null', b"").replace(b', "usage": null', b"")

    def _one(self, raw_event: bytes) -> bytes | None:
        data = event_data(raw_event)
        try:
            chunk = orjson.loads(data) if data is not None else None
        except orjson.JSONDecodeError:
            return raw_event  # not ours to judge; pass it on
        if not isinstance(chunk, dict):
            return raw_event
        usage = usage_from(chunk)
        if usage is not None:
            self.usage = usage
        if not self.strip:
            return raw_event
        if usage is not None and chunk.get("choices") == []:
            return None
        if "usage" in chunk:
            del chunk["usage"]
            return b"data: " + orjson.dumps(chunk)
        return raw_event


def stream_outcome(final_event: bytes) -> str:
    """How a relayed stream ended, from its final event: done, error or incomplete."""
    if b"[DONE]" in final_event:
        return "done"
    if b'"error"' in final_event:
        return "error"
    return "incomplete"
