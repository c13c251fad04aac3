"""OpenAI `chat.completion.chunk` streams ⇄ canonical stream events.

The decoder holds the finish reason back until `[DONE]`, because the usage chunk comes after
the finish chunk. The encoder numbers tool calls with its own stream-wide counter (never the
upstream's block index), so a text block before the first call still gives that call index 0.
Generated images go both ways in `delta.images` (OpenRouter's shape, as in whole answers),
each one whole, as a `data:` URL, numbered from 0 across the stream.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from crossway.dialects.common import Blocks, data_url, split_data_url
from crossway.dialects.openai.errors import stream_error_event
from crossway.dialects.openai.responses import (
    FINISH_TO_OPENAI,
    completion_id,
    finish_from,
    signature_of,
)
from crossway.dialects.openai.usage import usage_from, usage_object
from crossway.errors import UpstreamError
from crossway.ir.chat import FinishReason
from crossway.ir.stream import (
    BlockStart,
    Event,
    Failed,
    Finish,
    ImageOutput,
    ReasoningDelta,
    SignatureDelta,
    Start,
    TextDelta,
    ToolArgsDelta,
)
from crossway.ir.usage import Usage


class StreamDecoder:
    ends_at_eof = False
    """Feed it each chunk's parsed JSON; `done()` at `[DONE]`."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self._blocks = Blocks()
        self._tools: dict[int, int] = {}  # upstream tool index -> our block index
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: Any) -> list[Event]:
        out: list[Event] = []
        if not isinstance(chunk, dict):
            return out
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            self.finished = True
            failure = UpstreamError(
                f"the upstream reported an error in the stream: {message}",
                vendor="",
                kind="upstream_stream_error",
            )
            return [Failed(failure)]
        if not self.started:
            self.started = True
            out.append(Start(str(chunk.get("id") or ""), str(chunk.get("model") or "")))
        usage = usage_from(chunk)
        if usage is not None:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(self._blocks.ensure("reasoning", out), reasoning))
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out.append(TextDelta(self._blocks.ensure("text", out), text))
                    if key == "refusal":
                        self._finish = "content_filter"
            for call in delta.get("tool_calls") or ():
                self._tool_delta(call, out)
            images = delta.get("images")
            if images and isinstance(images, list):
                self._images(images, out)
            reason = choice.get("finish_reason")
            if reason and self._finish != "content_filter":
                self._finish = finish_from(reason)
        return out

    def done(self) -> list[Event]:
        out: list[Event] = []
        if not self.started:
            out.append(Start("", ""))
            self.started = True
        self._blocks.close(out)
        self.finished = True
        out.append(Finish(self._finish or "stop", self._usage))
        return out

    def _tool_delta(self, call: Any, out: list[Event]) -> None:
        if not isinstance(call, dict):
            return
        upstream_index = call.get("index", 0)
        fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        index = self._tools.get(upstream_index)
        if index is None:
            self._blocks.close(out)
            index = self._blocks.take()
            self._tools[upstream_index] = index
            self._blocks.open = ("tool_call", index)
            ident, name = str(call.get("id") or ""), str(fn.get("name") or "")
            out.append(BlockStart(index, "tool_call", ident, name, signature=signature_of(call)))
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            # fragments of an earlier, already closed call (interleaving, which no recorded
            # upstream does) still go out under that call's index
            out.append(ToolArgsDelta(index, args))

    def _images(self, images: list[Any], out: list[Event]) -> None:
        for image in images:
            ref = image.get("image_url") if isinstance(image, dict) else None
            url = ref.get("url") if isinstance(ref, dict) else ref
            inline = split_data_url(url) if isinstance(url, str) else None
            if inline is None or not inline[1]:
                continue  # an image by http(s) URL: the canonical event carries the bytes
            self._blocks.close(out)  # an image comes between blocks (the stream grammar)
            out.append(ImageOutput(inline[0], inline[1]))


class StreamEncoder:
    """Canonical events → `data: {chunk}` lines, ending with `data: [DONE]`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self._base: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}
        self._reasoning: list[str] = []  # the open reasoning block's text, for its signature
        self._images = 0  # generated images so far: the next one's `index`
        self._head: bytes | None = None
        self._tail = b""

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolArgsDelta):
            index = self._tool_index.get(event.index)
            if index is None:
                return b""
            return self._chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": event.json}}]}
            )
        if isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, SignatureDelta):
            # the whole signed block, so the client can hand it back on its next turn
            block = {"type": "thinking", "thinking": "".join(self._reasoning),
                     "signature": event.signature}  # fmt: skip
            return self._chunk({"thinking_blocks": [block]})
        if isinstance(event, BlockStart):
            if event.kind == "reasoning":
                self._reasoning = []
                if event.redacted is not None:
                    block = {"type": "redacted_thinking", "data": event.redacted}
                    return self._chunk({"thinking_blocks": [block]})
            if event.kind != "tool_call":
                return b""
            index = self._tool_index[event.index] = len(self._tool_index)
            call: dict[str, Any] = {
                "index": index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            if event.signature:
                call["extra_content"] = {"google": {"thought_signature": event.signature}}
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, Start):
            self.model = event.model or self.model  # the model that answers, if it says
            self._head = None
            self._base = {
                "id": completion_id(event.id or "crossway"),
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
            }
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, Finish):
            out = self._chunk({}, FINISH_TO_OPENAI[event.reason])
            if self.include_usage and event.usage is not None:
                usage = {**self._base, "choices": [], "usage": usage_object(event.usage)}
                out += b"data: " + orjson.dumps(usage) + b"\n\n"
            return out + b"data: [DONE]\n\n"
        if isinstance(event, Failed):
            return stream_error_event(event.error)
        if isinstance(event, ImageOutput):
            url = data_url(event.media_type, event.data)
            image = {"type": "image_url", "image_url": {"url": url}, "index": self._images}
            self._images += 1
            return self._chunk({"images": [image]})
        return b""  # BlockStop: nothing to say in this format

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        # the chunk's fixed parts are bytes made once per stream; only the delta is encoded
        if self._head is None:
            self._head = (
                b"data: " + orjson.dumps(self._base)[:-1] + b',"choices":[{"index":0,"delta":'
            )
            tail = b',"logprobs":null,"finish_reason":null}]'
            self._tail = tail + (b',"usage":null}\n\n' if self.include_usage else b"}\n\n")
        if finish is None:
            return self._head + orjson.dumps(delta) + self._tail
        chunk: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
