"""Generated images in translated streams: one `ImageOutput` event, each dialect's shape.

Gemini streams an image model's picture as an `inlineData` part; OpenAI clients get it in
`delta.images` (OpenRouter's shape); Anthropic's format has no image output and drops it.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from crossway.dialects.anthropic.streams import StreamEncoder as AnthropicEncoder
from crossway.dialects.common import StreamOptions
from crossway.dialects.gemini.streams import StreamDecoder as GeminiDecoder
from crossway.dialects.gemini.streams import StreamEncoder as GeminiEncoder
from crossway.dialects.openai.streams import StreamDecoder as OpenAIDecoder
from crossway.dialects.openai.streams import StreamEncoder as OpenAIEncoder
from crossway.dialects.registry import DIALECTS
from crossway.dialects.translate import StreamTranslator, event_payloads
from crossway.ir.stream import (
    BlockStart,
    BlockStop,
    Event,
    Finish,
    ImageOutput,
    Start,
    TextDelta,
)
from crossway.testing.media import PNG

B64 = base64.b64encode(PNG).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()


def gemini_chunk(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "r1", "modelVersion": "gemini-img"}


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-1", "model": "img", "choices": [choice]}


def image_entry(url: str, index: int = 0) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "index": index}


def sse_json(raw: bytes) -> list[Any]:
    """Each event's data, parsed (a `[DONE]` stays bytes)."""
    return [d if d == b"[DONE]" else orjson.loads(d) for d in event_payloads(raw)]


# ---------------------------------------------------------------- Gemini decoder


@pytest.mark.parametrize(
    "part",
    [
        {"inlineData": {"mimeType": "image/png", "data": B64}},
        {"inline_data": {"mime_type": "image/png", "data": B64}},
    ],
    ids=["camel", "snake"],
)
def test_gemini_decoder_turns_inline_data_into_an_image_event(part: dict[str, Any]) -> None:
    decoder = GeminiDecoder()
    events = decoder.feed(gemini_chunk([{"text": "here it is"}]))
    events += decoder.feed(gemini_chunk([part]))
    events += decoder.feed(gemini_chunk([{"text": "done"}]))
    events += decoder.feed(gemini_chunk([{"text": ""}], "STOP"))
    events += decoder.done()
    assert events[:4] == [
        Start("r1", "gemini-img"),
        BlockStart(0, "text"),
        TextDelta(0, "here it is"),
        BlockStop(0),  # the image comes between blocks: the text block is closed first
    ]
    assert events[4] == ImageOutput("image/png", B64)
    assert events[5:8] == [BlockStart(1, "text"), TextDelta(1, "done"), BlockStop(1)]
    assert isinstance(events[8], Finish) and events[8].reason == "stop"
    assert len(events) == 9


def test_gemini_decoder_keeps_other_media_and_empty_images_out() -> None:
    decoder = GeminiDecoder()
    events = decoder.feed(gemini_chunk([{"inlineData": {"mimeType": "audio/L16", "data": "AA=="}}]))
    events += decoder.feed(gemini_chunk([{"inlineData": {"mimeType": "image/png", "data": ""}}]))
    assert [type(e) for e in events] == [Start]


def test_gemini_decoder_defaults_a_missing_mime_type_to_png() -> None:
    events = GeminiDecoder().feed(gemini_chunk([{"inlineData": {"data": B64}}]))
    assert events[-1] == ImageOutput("image/png", B64)


# ---------------------------------------------------------------- Gemini encoder


@pytest.mark.parametrize("json_array", [False, True])
def test_gemini_encoder_writes_an_inline_data_part(json_array: bool) -> None:
    encoder = GeminiEncoder("gemini-img", StreamOptions(json_array=json_array))
    out = encoder.encode(Start("r1", "gemini-img"))
    out += encoder.encode(ImageOutput("image/jpeg", JPEG))
    out += encoder.encode(Finish("stop"))
    chunks = orjson.loads(out) if json_array else sse_json(out)
    assert chunks[0]["candidates"][0]["content"]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": JPEG}}
    ]
    assert chunks[0]["responseId"] == "r1"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


# ---------------------------------------------------------------- OpenAI encoder


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_encoder_sends_each_image_in_delta_images(include_usage: bool) -> None:
    encoder = OpenAIEncoder("img", include_usage)
    events: list[Event] = [
        Start("up", "img"),
        BlockStart(0, "text"),
        TextDelta(0, "two pictures"),
        BlockStop(0),
        ImageOutput("image/png", B64),
        ImageOutput("image/jpeg", JPEG),
        Finish("stop"),
    ]
    chunks = sse_json(b"".join(encoder.encode(e) for e in events))
    assert chunks[-1] == b"[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    images = [d["images"] for d in deltas if "images" in d]
    assert images == [
        [image_entry(f"data:image/png;base64,{B64}", 0)],
        [image_entry(f"data:image/jpeg;base64,{JPEG}", 1)],
    ]
    for chunk in chunks[:-1]:
        assert chunk["id"] == "chatcmpl-up" and chunk["object"] == "chat.completion.chunk"
        assert ("usage" in chunk) == include_usage
    # the text path is what it always was
    assert {"content": "two pictures"} in deltas


# ---------------------------------------------------------------- OpenAI decoder


def test_openai_decoder_turns_delta_images_into_image_events() -> None:
    decoder = OpenAIDecoder()
    events = decoder.feed(openai_chunk({"role": "assistant", "content": "look"}))
    events += decoder.feed(
        openai_chunk(
            {
                "images": [
                    image_entry(f"data:image/png;base64,{B64}"),
                    image_entry("https://example.com/not-inline.png", 1),  # no bytes: skipped
                    {"type": "image_url", "image_url": f"data:image/jpeg;base64,{JPEG}"},
                    "garbage",
                ]
            }
        )
    )
    events += decoder.feed(openai_chunk({}, "stop"))
    events += decoder.done()
    assert events == [
        Start("chatcmpl-1", "img"),
        BlockStart(0, "text"),
        TextDelta(0, "look"),
        BlockStop(0),
        ImageOutput("image/png", B64),
        ImageOutput("image/jpeg", JPEG),
        Finish("stop", None),
    ]


def test_an_image_after_a_text_in_one_delta_closes_the_text_block() -> None:
    decoder = OpenAIDecoder()
    delta = {"content": "hi", "images": [image_entry(f"data:image/png;base64,{B64}")]}
    events = decoder.feed(openai_chunk(delta))
    events += decoder.feed(openai_chunk({"content": " again"}))
    assert events[1:] == [
        BlockStart(0, "text"),
        TextDelta(0, "hi"),
        BlockStop(0),
        ImageOutput("image/png", B64),
        BlockStart(1, "text"),
        TextDelta(1, " again"),
    ]


# ---------------------------------------------------------------- Anthropic encoder


def test_anthropic_encoder_drops_images_and_keeps_its_blocks_numbered() -> None:
    encoder = AnthropicEncoder("claude")
    events: list[Event] = [
        Start("m1", "claude"),
        BlockStart(0, "text"),
        TextDelta(0, "before"),
        BlockStop(0),
        ImageOutput("image/png", B64),
        BlockStart(1, "text"),
        TextDelta(1, "after"),
        BlockStop(1),
        Finish("stop"),
    ]
    pieces = [encoder.encode(e) for e in events]
    assert pieces[4] == b""  # the image: nothing in this format
    frames = sse_json(b"".join(pieces))
    assert [f["type"] for f in frames] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    blocks = [f["index"] for f in frames if f["type"].startswith("content_block")]
    assert blocks == [0, 0, 0, 1, 1, 1]
    texts = [f["delta"]["text"] for f in frames if f["type"] == "content_block_delta"]
    assert texts == ["before", "after"]
    assert frames[-2]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_encoder_drops_an_image_that_is_the_whole_answer() -> None:
    encoder = AnthropicEncoder("claude")
    events: list[Event] = [Start("m1", "claude"), ImageOutput("image/png", B64), Finish("stop")]
    frames = sse_json(b"".join(encoder.encode(e) for e in events))
    assert [f["type"] for f in frames] == ["message_start", "message_delta", "message_stop"]


# ---------------------------------------------------------------- through the translator


def gemini_sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


GEMINI_IMAGE_STREAM = gemini_sse(
    gemini_chunk([{"text": "a lighthouse"}]),
    gemini_chunk([{"inlineData": {"mimeType": "image/png", "data": B64}}]),
    {
        **gemini_chunk([{"text": ""}], "STOP"),
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 9, "totalTokenCount": 13},
    },
)


def test_a_gemini_image_stream_reaches_an_openai_client() -> None:
    translator = StreamTranslator(
        DIALECTS["gemini"], DIALECTS["openai"], "gemini-img", StreamOptions(include_usage=True)
    )
    out = translator.feed(GEMINI_IMAGE_STREAM) + translator.end()
    chunks = sse_json(out)
    assert chunks[-1] == b"[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    assert [d["images"] for d in deltas if "images" in d] == [
        [image_entry(f"data:image/png;base64,{B64}")]
    ]
    assert "".join(d.get("content") or "" for d in deltas) == "a lighthouse"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finishes[-1] == "stop"
    assert translator.usage is not None and translator.usage.total_tokens == 13


def test_a_gemini_image_stream_reaches_an_anthropic_client_as_text() -> None:
    translator = StreamTranslator(
        DIALECTS["gemini"], DIALECTS["anthropic"], "gemini-img", StreamOptions()
    )
    out = translator.feed(GEMINI_IMAGE_STREAM) + translator.end()
    assert B64.encode() not in out
    frames = sse_json(out)
    assert [f["type"] for f in frames] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert frames[-2]["delta"]["stop_reason"] == "end_turn"


def test_an_openai_image_stream_reaches_a_gemini_client() -> None:
    upstream = b"".join(
        b"data: " + orjson.dumps(c) + b"\n\n"
        for c in (
            openai_chunk({"role": "assistant", "content": ""}),
            openai_chunk({"images": [image_entry(f"data:image/png;base64,{B64}")]}),
            openai_chunk({}, "stop"),
        )
    )
    translator = StreamTranslator(
        DIALECTS["openai"], DIALECTS["gemini"], "img", StreamOptions(include_usage=False)
    )
    out = translator.feed(upstream + b"data: [DONE]\n\n") + translator.end()
    chunks = sse_json(out)
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert {"inlineData": {"mimeType": "image/png", "data": B64}} in parts
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
