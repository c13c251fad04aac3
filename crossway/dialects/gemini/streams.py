"""Gemini streamGenerateContent chunks ⇄ canonical stream events.

Each upstream chunk is a whole GenerateContentResponse holding only new parts; a function
call arrives whole, and the finish reason may come in a chunk of its own after it. Gemini
has no end marker: the decoder finishes at the end of the body, and only if a finish reason
came (else the stream was cut). A generated image (an `inlineData` part) also arrives whole,
and is one `ImageOutput` either way. The encoder buffers a tool call's argument fragments
until its block ends, since Gemini's `args` is an object with no partial form, and writes SSE
(`alt=sse`) or, for a client that did not ask for SSE, one streamed JSON array.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from crossway.dialects.common import Blocks, StreamOptions
from crossway.dialects.gemini.errors import error_object
from crossway.dialects.gemini.responses import FINISH_TO_GEMINI, call_id, finish_from
from crossway.dialects.gemini.usage import usage_from, usage_object
from crossway.errors import UpstreamError
from crossway.ir.chat import arguments_object
from crossway.ir.stream import (
    BlockStart,
    BlockStop,
    Event,
    Failed,
    Finish,
    ImageOutput,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolArgsDelta,
)


class StreamDecoder:
    ends_at_eof = True  # no end marker: the end of the body ends the stream

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self._blocks = Blocks()
        self._calls = 0
        self._finish: Any = None
        self._raw_usage: Any = None
        self._saw_tool = False
        self._response_id = ""

    def feed(self, data: Any) -> list[Event]:
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            return []
        if "error" in data:
            self.finished = True
            error = data["error"] if isinstance(data["error"], dict) else {}
            code = error.get("code")
            failure = UpstreamError(
                f"the upstream reported an error in the stream: {error.get('message')}",
                vendor="google",
                status=code if isinstance(code, int) and code >= 400 else 502,
                kind="upstream_stream_error",
            )
            return [Failed(failure)]
        out: list[Event] = []
        if not self.started:
            self.started = True
            self._response_id = str(data.get("responseId") or os.urandom(8).hex())
            out.append(Start(self._response_id, str(data.get("modelVersion") or "")))
        raw_usage = data.get("usageMetadata")
        if raw_usage is not None:  # the last one with a total is read at the end
            self._raw_usage = raw_usage
        candidates = data.get("candidates") or []
        feedback = data.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            self._finish = "SAFETY"
        if candidates and isinstance(candidates[0], dict):
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or ():
                if isinstance(part, dict):
                    self._part(part, out)
            reason = candidate.get("finishReason")
            if reason:
                self._finish = reason
        return out

    def done(self) -> list[Event]:
        if not self.started or self._finish is None:
            return []  # cut before its finish reason: the relay reports it incomplete
        out: list[Event] = []
        self._blocks.close(out)
        self.finished = True
        raw = self._raw_usage
        usage = usage_from(raw) if isinstance(raw, dict) and "totalTokenCount" in raw else None
        out.append(Finish(finish_from(self._finish, self._saw_tool), usage))
        return out

    def _part(self, part: dict[str, Any], out: list[Event]) -> None:
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._blocks.close(out)
            index, name = self._blocks.take(), str(call.get("name") or "")
            ident = str(call.get("id") or call_id(self._response_id, self._calls, name))
            self._calls += 1
            self._saw_tool = True
            signature = part.get("thoughtSignature")
            out.append(BlockStart(index, "tool_call", ident, name, signature=signature))
            out.append(ToolArgsDelta(index, orjson.dumps(call.get("args") or {}).decode()))
            out.append(BlockStop(index))
            return
        text = part.get("text")
        if not isinstance(text, str) or not text:
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(inline, dict):
                self._image(inline, out)
            return
        if part.get("thought"):
            out.append(ReasoningDelta(self._blocks.ensure("reasoning", out), text))
        else:
            out.append(TextDelta(self._blocks.ensure("text", out), text))

    def _image(self, inline: dict[str, Any], out: list[Event]) -> None:
        """A generated image (an image model's `inlineData` part), whole."""
        data = inline.get("data")
        mime = inline.get("mimeType") or inline.get("mime_type") or "image/png"
        if not isinstance(data, str) or not data or not isinstance(mime, str):
            return
        if not mime.startswith("image/"):
            return  # other media (a speech model's audio) has no stream event yet
        self._blocks.close(out)  # an image comes between blocks (the stream grammar)
        out.append(ImageOutput(mime, data))


class StreamEncoder:
    """Canonical events → Gemini chunks, as SSE or as one JSON array."""

    def __init__(self, model: str, options: StreamOptions | None = None) -> None:
        self.model = model
        self.json_array = options is not None and options.json_array
        self._first = True
        self._response_id = ""
        self._calls: dict[int, list[Any]] = {}  # block -> [id, name, signature, fragments]

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._chunk([{"text": event.text}])
        if isinstance(event, ReasoningDelta):
            return self._chunk([{"text": event.text, "thought": True}])
        if isinstance(event, ToolArgsDelta):
            call = self._calls.get(event.index)
            if call is not None:
                call[3].append(event.json)
            return b""
        if isinstance(event, BlockStart):
            if event.kind == "tool_call":
                self._calls[event.index] = [event.id, event.name, event.signature, []]
            return b""
        if isinstance(event, BlockStop):
            call = self._calls.pop(event.index, None)
            if call is None:
                return b""
            part: dict[str, Any] = {
                "functionCall": {
                    "id": call[0],
                    "name": call[1],
                    "args": arguments_object("".join(call[3])),
                }
            }
            if call[2]:
                part["thoughtSignature"] = call[2]
            return self._chunk([part])
        if isinstance(event, Start):
            self._response_id = event.id or os.urandom(8).hex()
            self.model = event.model or self.model
            return b""
        if isinstance(event, ImageOutput):
            return self._chunk([{"inlineData": {"mimeType": event.media_type, "data": event.data}}])
        if isinstance(event, Finish):
            usage = usage_object(event.usage) if event.usage is not None else None
            out = self._chunk([{"text": ""}], FINISH_TO_GEMINI[event.reason], usage)
            return out + (b"]" if self.json_array else b"")
        if isinstance(event, Failed):
            out = self._frame(orjson.dumps(error_object(event.error)))
            return out + (b"]" if self.json_array else b"")
        return b""

    def _chunk(
        self,
        parts: list[dict[str, Any]],
        finish: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        data: dict[str, Any] = {"candidates": [candidate]}
        if usage is not None:
            data["usageMetadata"] = usage
        data["modelVersion"] = self.model
        data["responseId"] = self._response_id
        return self._frame(orjson.dumps(data))

    def _frame(self, raw: bytes) -> bytes:
        if not self.json_array:
            return b"data: " + raw + b"\r\n\r\n"
        prefix = b"[" if self._first else b",\r\n"
        self._first = False
        return prefix + raw
