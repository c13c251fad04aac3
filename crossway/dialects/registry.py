"""Every wire format Crossway speaks, by name: the pieces a front door and a relay need.

A provider names its dialect (`Provider.dialect`); a front door names its own. When the two
are equal, bytes pass through; otherwise requests, answers and streams go through the
canonical IR with the pieces below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from crossway.dialects import anthropic as anthropic_errors
from crossway.dialects import openai as openai_errors
from crossway.dialects.anthropic import passthrough as anthropic_passthrough
from crossway.dialects.anthropic import requests as anthropic_requests
from crossway.dialects.anthropic import responses as anthropic_responses
from crossway.dialects.anthropic import streams as anthropic_streams
from crossway.dialects.anthropic import usage as anthropic_usage
from crossway.dialects.common import StreamOptions
from crossway.dialects.gemini import errors as gemini_errors
from crossway.dialects.gemini import passthrough as gemini_passthrough
from crossway.dialects.gemini import requests as gemini_requests
from crossway.dialects.gemini import responses as gemini_responses
from crossway.dialects.gemini import streams as gemini_streams
from crossway.dialects.gemini import usage as gemini_usage
from crossway.dialects.openai import requests as openai_requests
from crossway.dialects.openai import responses as openai_responses
from crossway.dialects.openai import streams as openai_streams
from crossway.dialects.openai import usage as openai_usage
from crossway.dialects.openai.requests import UpstreamOptions
from crossway.errors import GatewayError
from crossway.ir import Usage
from crossway.ir.chat import ChatRequest, ChatResponse
from crossway.ir.stream import Event


class StreamDecoder(Protocol):
    started: bool
    finished: bool
    ends_at_eof: bool  # the format has no end marker: `done()` at the end of the body

    def feed(self, data: Any) -> list[Event]: ...
    def done(self) -> list[Event]: ...


class StreamEncoder(Protocol):
    def encode(self, event: Event) -> bytes: ...


class PassthroughUsage(Protocol):
    usage: Usage | None

    def process(self, out: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    decode_request: Callable[[dict[str, Any]], ChatRequest]
    encode_request: Callable[[ChatRequest, str, UpstreamOptions], dict[str, Any]]
    decode_response: Callable[[dict[str, Any]], ChatResponse]
    encode_response: Callable[[ChatResponse, str], dict[str, Any]]
    stream_decoder: Callable[[], StreamDecoder]
    stream_encoder: Callable[[str, StreamOptions], StreamEncoder]  # (model, options)
    error_body: Callable[[GatewayError], bytes]
    stream_error_event: Callable[[GatewayError], bytes]
    # pass-through helpers: usage from an answer, usage off a relayed stream, how it ended
    usage_from: Callable[[Any], Usage | None]
    passthrough_usage: Callable[[StreamOptions], PassthroughUsage]
    stream_outcome: Callable[[bytes], str]
    # a pass-through body for an upstream of this same dialect: (payload, model, options,
    # whether the caller asked for stream usage) -> changed in place
    prepare_passthrough: Callable[[dict[str, Any], str, UpstreamOptions, bool], None]
    # tool names the request encoder had to change: upstream name -> the caller's name
    renamed_tools: Callable[[ChatRequest], dict[str, str]]


def _anthropic_usage(data: Any) -> Usage | None:
    return anthropic_usage.usage_from(data.get("usage")) if isinstance(data, dict) else None


OPENAI = Dialect(
    name="openai",
    decode_request=openai_requests.decode_request,
    encode_request=openai_requests.encode_request,
    decode_response=openai_responses.decode_response,
    encode_response=openai_responses.encode_response,
    stream_decoder=openai_streams.StreamDecoder,
    stream_encoder=lambda model, options: openai_streams.StreamEncoder(
        model, options.include_usage
    ),
    error_body=openai_errors.error_body,
    stream_error_event=openai_errors.stream_error_event,
    usage_from=openai_usage.usage_from,
    # strips the usage chunk Crossway asked for when the caller did not
    passthrough_usage=lambda options: openai_usage.StreamUsage(not options.include_usage),
    stream_outcome=openai_usage.stream_outcome,
    prepare_passthrough=openai_requests.prepare_passthrough,
    renamed_tools=openai_requests.renamed_tools,
)

ANTHROPIC = Dialect(
    name="anthropic",
    decode_request=anthropic_requests.decode_request,
    encode_request=lambda req, model, options: anthropic_requests.encode_request(req, model),
    decode_response=anthropic_responses.decode_response,
    encode_response=anthropic_responses.encode_response,
    stream_decoder=anthropic_streams.StreamDecoder,
    stream_encoder=lambda model, options: anthropic_streams.StreamEncoder(model),
    error_body=anthropic_errors.error_body,
    stream_error_event=anthropic_errors.stream_error_event,
    usage_from=_anthropic_usage,
    passthrough_usage=lambda options: anthropic_passthrough.StreamUsage(),
    stream_outcome=anthropic_passthrough.stream_outcome,
    prepare_passthrough=anthropic_passthrough.prepare_passthrough,
    renamed_tools=lambda request: {},
)

GEMINI = Dialect(
    name="gemini",
    decode_request=gemini_requests.decode_request,
    encode_request=gemini_requests.encode_request,
    decode_response=gemini_responses.decode_response,
    encode_response=gemini_responses.encode_response,
    stream_decoder=gemini_streams.StreamDecoder,
    stream_encoder=gemini_streams.StreamEncoder,
    error_body=gemini_errors.error_body,
    stream_error_event=gemini_errors.stream_error_event,
    usage_from=gemini_usage.response_usage,
    passthrough_usage=gemini_passthrough.StreamUsage,
    stream_outcome=gemini_passthrough.stream_outcome,
    prepare_passthrough=gemini_passthrough.prepare_passthrough,
    renamed_tools=lambda request: {},
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (OPENAI, ANTHROPIC, GEMINI)}
