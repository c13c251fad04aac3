"""Contract checks against Anthropic's OpenAPI spec (test support, not shipped).

    validate_anthropic("CountMessageTokensResponse", body)   # AssertionError on mismatch
    validate_anthropic_request(body)                         # a POST /v1/messages body
    validate_anthropic_message(body)                         # a Message answer
    validate_anthropic_error(body)                           # an error answer
    events = validate_anthropic_stream(raw_sse_bytes)        # each event checked, and the order

The spec is `shared/specs/anthropic.openapi.json` next to the repo (override the directory with
CROSSWAY_SPECS_DIR, as for `contracts.py`); a missing spec raises, it never skips. The file is
OpenAPI 3.1 (JSON Schema 2020-12 already), so unlike the OpenAI spec it needs no rewriting, only
the few deliberate deviations listed in `SPEC_PATCHES`. Useful component names: request
`CreateMessageParams`, answer `Message`, errors `ErrorResponse`, token counting
`CountMessageTokensParams` / `CountMessageTokensResponse`, stream events `MessageStartEvent`,
`ContentBlockStartEvent`, `ContentBlockDeltaEvent`, `ContentBlockStopEvent`, `MessageDeltaEvent`,
`MessageStopEvent`, `Ping` (see `stream_event_schema`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from contracts import _short, apply_patches, assert_matches, schema_validator
from jsonschema import Draft202012Validator

SPEC_FILE = "anthropic.openapi.json"
SPECS_DIR_ENV = "CROSSWAY_SPECS_DIR"
# Base URI of the spec document in the registry; "#/components/..." refs resolve against it.
_SPEC_URI = "https://crossway.invalid/specs/anthropic.openapi.json"
_Json = dict[str, Any]


class SpecNotFoundError(FileNotFoundError):
    """The Anthropic spec file is missing: contract tests must fail, never skip."""


# --------------------------------------------------------------------------- spec patches
# The spec is generated from the SDKs' models, which mark every field that has a default as
# required; the API leaves most of those out when they are null. The recorded streams in the
# official SDK's tests (tests/lib/streaming/fixtures/*.txt, quoted in
# shared/reference/translation.md §4.2) show what the API really sends. Each entry: (JSON pointer
# into the spec, transform of the schema found there, why). Every pointer must exist.


def _optional(*names: str) -> Callable[[_Json], _Json]:
    def transform(schema: _Json) -> _Json:
        missing = [n for n in names if n not in schema.get("required", [])]
        if missing:
            raise RuntimeError(f"spec patch: {missing} are no longer required; review it")
        return {**schema, "required": [n for n in schema["required"] if n not in names]}

    return transform


def _add_request_too_large(schema: _Json) -> _Json:
    branch = {
        "type": "object",
        "properties": {"type": {"const": "request_too_large"}, "message": {"type": "string"}},
        "required": ["type", "message"],
    }
    return {**schema, "oneOf": [*schema["oneOf"], branch]}


SPEC_PATCHES: tuple[tuple[str, Callable[[_Json], _Json], str], ...] = (
    (
        "/components/schemas/Message",
        _optional("stop_details", "container"),
        "messages carry stop_details and container only when they apply; the recorded "
        "message_start events have neither",
    ),
    (
        "/components/schemas/Usage",
        _optional(
            "cache_creation",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "inference_geo",
            "server_tool_use",
            "service_tier",
        ),
        "all of these default to null; the spec's own Message example has usage "
        "{input_tokens, output_tokens} and older API versions send only those two",
    ),
    (
        "/components/schemas/ResponseTextBlock",
        _optional("citations"),
        "text blocks carry citations only when citations are enabled "
        '(recorded: {"type":"text","text":""})',
    ),
    (
        "/components/schemas/ResponseToolUseBlock",
        _optional("caller"),
        "caller (default {type: direct}) came with programmatic tool calling; tool_use blocks "
        "without it are still what most API versions send",
    ),
    (
        "/components/schemas/MessageDelta",
        _optional("container", "stop_details"),
        'the recorded message_delta is {"stop_reason":"tool_use","stop_sequence":null}; '
        "stop_details appears only with a refusal",
    ),
    (
        "/components/schemas/MessageDeltaUsage",
        _optional(
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "server_tool_use",
        ),
        'the recorded message_delta usage is {"output_tokens":65}; the SDK keeps the '
        "message_start values when these are omitted",
    ),
    (
        "/components/schemas/ErrorResponse/properties/error",
        _add_request_too_large,
        "a 413 answers error.type request_too_large (docs.claude.com/en/api/errors), which is "
        "missing from the spec's error union",
    ),
)


def _apply_patches(spec: _Json) -> None:
    apply_patches(spec, SPEC_PATCHES)


# --------------------------------------------------------------------------- loading
def spec_path() -> Path:
    """Where the Anthropic spec is expected (CROSSWAY_SPECS_DIR overrides the directory)."""
    override = os.environ.get(SPECS_DIR_ENV)
    specs_dir = Path(override) if override else Path(__file__).resolve().parents[2] / "shared/specs"
    return specs_dir / SPEC_FILE


@cache
def _spec() -> _Json:
    path = spec_path()
    try:
        spec: _Json = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise SpecNotFoundError(
            f"Anthropic spec not found at {path}; put {SPEC_FILE} there or set {SPECS_DIR_ENV} "
            "to the directory holding it"
        ) from None
    _apply_patches(spec)
    return spec


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    return schema_validator(_spec(), _SPEC_URI, schema_name, "Anthropic")


def stream_event_schema(event_type: str) -> str:
    """The component schema of a stream event type, from the spec's MessageStreamEvent union."""
    mapping = _spec()["components"]["schemas"]["MessageStreamEvent"]["discriminator"]["mapping"]
    if event_type not in mapping:
        raise AssertionError(f"unknown stream event type {event_type!r}; known: {sorted(mapping)}")
    return str(mapping[event_type]).rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- validation
def validate_anthropic(schema_name: str, payload: object) -> None:
    """Assert that payload matches #/components/schemas/<schema_name> of the Anthropic spec."""
    assert_matches(_validator(schema_name), payload, f"Anthropic schema {schema_name}")


def validate_anthropic_request(body: object) -> None:
    """A POST /v1/messages body. `simulate` (the simulated upstream's fault hook, which the real
    API would refuse) is left out, so requests that ask for faults can be checked too."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "simulate"}
    validate_anthropic("CreateMessageParams", body)


def validate_anthropic_message(body: object) -> None:
    validate_anthropic("Message", body)


def validate_anthropic_error(body: object) -> None:
    validate_anthropic("ErrorResponse", body)


# --------------------------------------------------------------------------- SSE
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Which delta types may fill which block types.
_DELTAS = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
}


def _sse_frames(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) of each SSE event, per the WHATWG event-stream rules."""
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"SSE body is not UTF-8: {exc}") from None
    lines = _LINE_BREAK.split(text)
    if lines.pop():  # text after the last line break: an unterminated line
        raise AssertionError("SSE body ends mid-line; the last event must end with a blank line")
    frames: list[tuple[str | None, str]] = []
    event: str | None = None
    data: list[str] | None = None  # None: no event in progress
    for line in lines:
        if not line:
            if data:  # an event without data is not dispatched
                frames.append((event, "\n".join(data)))
            event, data = None, None
        elif not line.startswith(":"):  # ":..." is a comment (keep-alive)
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            data = data if data is not None else []
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data is not None:
        raise AssertionError("SSE body ends mid-event; the last event must end with a blank line")
    return frames


class _Grammar:
    """message_start ( ping | block_start(i) block_delta(i)* block_stop(i) )* message_delta
    message_stop, blocks numbered 0, 1, 2...; ping anywhere after message_start; an error
    event may end the stream at any point."""

    def __init__(self) -> None:
        self.started = self.delta_seen = self.ended = False
        self.next_index = 0
        self.open: tuple[int, str] | None = None  # (index, block type) of the open block
        self.signed = False  # the open thinking block had its signature_delta

    def feed(self, event: _Json) -> None:
        kind = event["type"]
        if self.ended:
            raise AssertionError(f"{kind} after the stream ended")
        if kind == "error":
            self.ended = True
            return
        if not self.started:
            if kind != "message_start":
                raise AssertionError(f"the stream must begin with message_start, not {kind}")
            self.started = True
            return
        handler = getattr(self, "_" + kind, None)
        if handler is None:
            raise AssertionError(f"unexpected {kind} event")
        handler(event)

    def _message_start(self, event: _Json) -> None:
        raise AssertionError("a second message_start")

    def _ping(self, event: _Json) -> None:
        pass

    def _content_block_start(self, event: _Json) -> None:
        if self.open is not None:
            raise AssertionError(f"block {event['index']} starts before block {self.open[0]} stops")
        if self.delta_seen:
            raise AssertionError("content_block_start after message_delta")
        if event["index"] != self.next_index:
            raise AssertionError(f"block index {event['index']}, expected {self.next_index}")
        self.open = (event["index"], event["content_block"]["type"])
        self.next_index += 1
        self.signed = False

    def _content_block_delta(self, event: _Json) -> None:
        if self.open is None or event["index"] != self.open[0]:
            raise AssertionError(f"delta for block {event['index']}, which is not open")
        delta, block = event["delta"]["type"], self.open[1]
        if delta not in _DELTAS.get(block, set()):
            raise AssertionError(f"{delta} in a {block} block")
        if self.signed:
            raise AssertionError(f"{delta} after the thinking block's signature_delta")
        self.signed = delta == "signature_delta"

    def _content_block_stop(self, event: _Json) -> None:
        if self.open is None or event["index"] != self.open[0]:
            raise AssertionError(f"content_block_stop for block {event['index']}, not open")
        self.open = None

    def _message_delta(self, event: _Json) -> None:
        if self.open is not None:
            raise AssertionError(f"message_delta while block {self.open[0]} is open")
        if self.delta_seen:
            raise AssertionError("a second message_delta")
        self.delta_seen = True

    def _message_stop(self, event: _Json) -> None:
        if not self.delta_seen:
            raise AssertionError("message_stop without a message_delta before it")
        self.ended = True


def validate_anthropic_stream(raw: bytes) -> list[dict[str, Any]]:
    """Check a Messages SSE body; return its events' data.

    Each frame needs an `event:` line equal to its data's `type` (the SDK drops frames without
    one), each event must match its schema, and the events must follow the grammar in `_Grammar`.
    An `error` event is checked as an ErrorResponse; in a stream it carries no request_id (that
    is in the response headers), so a missing one is allowed there.
    """
    grammar = _Grammar()
    events: list[dict[str, Any]] = []
    for number, (name, data) in enumerate(_sse_frames(raw), start=1):
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(
                f"SSE event #{number}: data is not JSON ({exc}): {data!r}"
            ) from None
        try:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise AssertionError(f"data is not an object with a type: {_short(data, 120)!r}")
            if name != event["type"]:
                raise AssertionError(f"event: line {name!r} differs from type {event['type']!r}")
            if event["type"] == "error":
                validate_anthropic("ErrorResponse", {"request_id": None, **event})
            else:
                validate_anthropic(stream_event_schema(event["type"]), event)
            grammar.feed(event)
        except AssertionError as exc:
            raise AssertionError(f"SSE event #{number} ({name}): {exc}") from None
        events.append(event)
    if not grammar.ended:
        raise AssertionError("the stream must end with message_stop (or an error event)")
    return events
