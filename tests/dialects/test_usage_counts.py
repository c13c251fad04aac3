"""Usage as upstreams report it: what is not a count of something counts nothing."""

from __future__ import annotations

from typing import Any

import pytest

from crossway.dialects.anthropic.usage import usage_from as anthropic_usage
from crossway.dialects.gemini.usage import usage_from as gemini_usage
from crossway.dialects.openai.usage import media_usage_from
from crossway.dialects.openai.usage import usage_from as openai_usage


@pytest.mark.parametrize("bad", [-500, "12", 3.5, True, None, [1]])
def test_a_count_that_is_not_a_whole_number_of_tokens_counts_none(bad: Any) -> None:
    """A negative count would lower the key's spend and its tokens this minute."""
    openai = openai_usage({"usage": {"prompt_tokens": bad, "completion_tokens": 7}})
    assert openai is not None and (openai.prompt_tokens, openai.completion_tokens) == (0, 7)
    claude = anthropic_usage({"input_tokens": bad, "output_tokens": bad})
    assert claude is not None and (claude.prompt_tokens, claude.completion_tokens) == (0, 0)
    gemini = gemini_usage({"promptTokenCount": bad, "candidatesTokenCount": 4})
    assert gemini is not None and (gemini.prompt_tokens, gemini.completion_tokens) == (0, 4)


def test_negative_audio_seconds_count_none() -> None:
    assert media_usage_from({"usage": {"type": "duration", "seconds": -30}}).audio_seconds == 0
    assert media_usage_from({"duration": -2.5}).audio_seconds == 0
    assert media_usage_from({"duration": 2.5}).audio_seconds == 2.5
