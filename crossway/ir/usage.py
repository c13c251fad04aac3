"""Usage as every dialect reports it, in one shape: tokens, and the units media endpoints
are billed in (images made, characters spoken, seconds of audio heard)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # parts of the two above, not additions to them
    cached_tokens: int = 0  # read from a prompt cache
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # written to a prompt cache (Anthropic's cache creation)
    images: int = 0  # generated
    characters: int = 0  # of text turned into speech
    audio_seconds: float = 0.0  # of audio transcribed or translated

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
