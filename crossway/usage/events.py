"""The usage event: what one request asked, who served it, what it used and cost."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from crossway.ir import Usage


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    started_at: float  # unix time
    endpoint: str  # "chat.completions", "embeddings"
    principal: str  # who called: a key id, or "master"
    stream: bool = False
    model_requested: str | None = None
    model: str | None = None  # the public id that served it
    upstream_model: str | None = None
    provider: str | None = None
    vendor: str | None = None
    status: int = 0
    error_type: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None  # streams: time to the first byte sent to the client
    usage: Usage | None = None
    cost_usd: float | None = None
    upstream_request_id: str | None = None
    attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        # dataclasses.asdict deep-copies and is several times slower; the fields are flat
        data = {name: getattr(self, name) for name in _FIELDS}
        usage = self.usage
        data["usage"] = (
            None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "total_tokens": usage.total_tokens,
                "images": usage.images,
                "characters": usage.characters,
                "audio_seconds": usage.audio_seconds,
            }
        )
        return data


_FIELDS = tuple(f.name for f in fields(UsageEvent))
