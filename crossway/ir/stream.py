"""Canonical stream events: what a dialect's stream decoder emits and its encoder consumes.

A decoder guarantees a simple grammar, so encoders stay small:

    Start  (BlockStart (delta of that block's kind)* BlockStop | ImageOutput)*  Finish  End
                                                         any point:   Failed  (then nothing)

Blocks are numbered 0, 1, 2… in order; only one is open at a time. A generated image arrives
whole, so it is no block: `ImageOutput` comes only between blocks (a decoder closes the open
block first, which keeps the image in its place among the text around it) and takes no block
number. `Finish` carries the final usage, which several dialects only know at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crossway.errors import GatewayError
from crossway.ir.chat import FinishReason
from crossway.ir.usage import Usage

BlockKind = Literal["text", "reasoning", "tool_call"]


@dataclass(slots=True)
class Start:
    id: str
    model: str
    usage: Usage | None = None  # what is known up front (Anthropic sends input tokens here)


@dataclass(slots=True)
class BlockStart:
    index: int
    kind: BlockKind
    id: str | None = None  # tool calls
    name: str | None = None
    redacted: str | None = None  # redacted reasoning carries opaque data, no deltas
    signature: str | None = None  # a tool call's Gemini thoughtSignature


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    index: int
    text: str


@dataclass(slots=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    json: str


@dataclass(slots=True)
class ImageOutput:
    """A whole generated image (e.g. a Gemini image model's `inlineData` part)."""

    media_type: str  # e.g. "image/png"
    data: str  # base64, without any `data:` prefix


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    usage: Usage | None = None
    stop_sequence: str | None = None


@dataclass(slots=True)
class Failed:
    """The upstream failed after the stream began; the encoder ends with its error event."""

    error: GatewayError


Event = (
    Start
    | BlockStart
    | TextDelta
    | ReasoningDelta
    | SignatureDelta
    | ToolArgsDelta
    | BlockStop
    | ImageOutput
    | Finish
    | Failed
)
