"""The canonical chat conversation: what every wire format's request and answer decode into.

Decoders (one per dialect) build these; encoders (one per dialect) read them. Nothing here
knows a wire format. Tool-call arguments stay a JSON *string*, as they arrive from most
upstreams, so malformed arguments are carried rather than lost; a dialect that needs an object
parses them at its edge (see `arguments_object`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from crossway.ir.usage import Usage

Role = Literal["user", "assistant"]
# stop: natural end; stop_sequence: a requested stop sequence matched; length: out of tokens;
# tool_calls: the answer is tool calls; content_filter: refused or filtered; pause: the
# upstream paused a long turn (Anthropic `pause_turn`)
FinishReason = Literal["stop", "stop_sequence", "length", "tool_calls", "content_filter", "pause"]


@dataclass(slots=True)
class Text:
    text: str
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class Image:
    """An image by URL or inline base64 (`data` without any `data:` prefix)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class Document:
    """A file such as a PDF: inline base64 `data`, a `url`, or plain `text`."""

    media_type: str = "application/pdf"
    data: str | None = None
    url: str | None = None
    text: str | None = None
    filename: str | None = None
    title: str | None = None
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class Audio:
    data: str
    format: str


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it (possibly malformed)
    # Gemini's opaque `thoughtSignature` of this call, which Gemini 3 wants back with it
    signature: str | None = None


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image | Document]
    is_error: bool = False
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class Reasoning:
    """Model reasoning. `signature` (or `redacted`, opaque data) lets it be replayed upstream."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Text | Image | Document | Audio | ToolCall | ToolResult | Reasoning


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema of the arguments object
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None  # with mode "tool"


@dataclass(slots=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Thinking:
    """Reasoning asked for: an effort level, a token budget, or explicitly off."""

    enabled: bool = True
    budget_tokens: int | None = None
    effort: str | None = None  # none|minimal|low|medium|high|xhigh|max


@dataclass(slots=True)
class ChatRequest:
    messages: list[Message]
    model: str = ""
    system: list[Text] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    thinking: Thinking | None = None
    user: str | None = None
    seed: int | None = None
    n: int = 1  # choices asked for
    modalities: list[str] | None = None  # what the answer may hold: "text", "image", "audio"
    # what only the caller's own dialect understands; kept for its encoder, ignored by others
    extra: dict[str, Any] = field(default_factory=dict)
    dialect: str = ""  # the dialect the request was decoded from (whose `extra` this is)


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part]
    finish: FinishReason = "stop"
    stop_sequence: str | None = None
    usage: Usage | None = None
    created: int | None = None


def arguments_object(arguments: str) -> dict[str, Any]:
    """Tool arguments as an object for dialects that need one; never raises.

    Empty means `{}`; malformed JSON is kept as `{"raw_input": text}` and a JSON value that
    is not an object as `{"value": value}`, so nothing the model said is lost.
    """
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"raw_input": arguments}
    return value if isinstance(value, dict) else {"value": value}


def arguments_text(value: Any) -> str:
    """An arguments object as the JSON text OpenAI-style dialects carry."""
    return orjson.dumps(value if value is not None else {}).decode()
