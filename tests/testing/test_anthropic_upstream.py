"""The simulated upstream's Anthropic Messages API, driven with the official `anthropic` SDK.

Answers, raw bodies and raw streams are also checked against Anthropic's published spec
(`anthropic_contracts`), and that check is shown to fail on broken payloads.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import anthropic
import anthropic_contracts
import httpx
import orjson
import pytest
from anthropic.types import Message, ToolUseBlock
from anthropic_contracts import (
    SpecNotFoundError,
    validate_anthropic,
    validate_anthropic_error,
    validate_anthropic_message,
    validate_anthropic_request,
    validate_anthropic_stream,
)

from crossway.testing import SimulatedUpstream
from crossway.testing.anthropic import STREAM_ERROR

KEY = "sk-upstream-secret-123"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
HELLO: Any = [{"role": "user", "content": "hello there"}]
PARALLEL: Any = [{"role": "user", "content": "weather and time [parallel]"}]
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def direct(upstream: SimulatedUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.base_url, api_key=KEY, max_retries=0)


def raw(
    upstream: SimulatedUpstream,
    body: dict[str, Any],
    path: str = "/v1/messages",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(upstream.base_url + path, json=body, headers=headers or HEADERS, timeout=10)


def raw_stream(upstream: SimulatedUpstream, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream's bytes, checked against the spec and the event grammar; its events."""
    reply = raw(upstream, {**body, "stream": True})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["request-id"].startswith("req_sim")
    return validate_anthropic_stream(reply.content)


def last_request(upstream: SimulatedUpstream) -> Any:
    return next(r.body for r in reversed(upstream.requests) if r.path.endswith("/messages"))


def blocks(message: Any) -> list[dict[str, Any]]:
    """Content blocks as plain data (a streamed message's blocks are Parsed* subclasses)."""
    return [b.model_dump(exclude_none=True, exclude={"parsed_output"}) for b in message.content]


def text_of(message: Message, index: int = 0) -> str:
    block = message.content[index]
    assert block.type == "text"
    return block.text


def tool_uses(message: Message) -> list[ToolUseBlock]:
    assert all(b.type == "tool_use" for b in message.content)
    return [b for b in message.content if isinstance(b, ToolUseBlock)]


def deltas(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["delta"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == kind
    ]


# --- answers ------------------------------------------------------------------------------------


def test_text_reply(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    response = client.messages.with_raw_response.create(
        model="claude-sim",
        max_tokens=100,
        messages=HELLO,
    )
    assert response.headers["request-id"].startswith("req_sim")
    validate_anthropic_message(response.http_response.json())
    validate_anthropic_request(last_request(upstream))
    message = response.parse()
    assert message.id.startswith("msg_sim") and message.model == "claude-sim"
    assert [b.type for b in message.content] == ["text"]
    assert text_of(message) == "[simulated] Hello from claude-sim. You said: hello there"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.output_tokens == 8 and message.usage.input_tokens > 0
    assert message.usage.service_tier == "standard"
    again = client.messages.create(model="claude-sim", max_tokens=100, messages=HELLO)
    assert again.id == message.id and again.usage == message.usage


def test_stream_matches_the_plain_answer(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    plain = client.messages.create(model="m", max_tokens=100, messages=HELLO)
    with client.messages.stream(model="m", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == text_of(plain)
    assert blocks(final) == blocks(plain) and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens

    events = raw_stream(upstream, {"model": "m", "max_tokens": 100, "messages": HELLO})
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["output_tokens"] == 1
    assert len(deltas(events, "text_delta")) == len(text.split(" "))  # one per word


def test_chunk_fault_sets_the_number_of_text_deltas(upstream: SimulatedUpstream) -> None:
    body = {"model": "m", "max_tokens": 100, "messages": HELLO, "simulate": {"chunks": 20}}
    assert len(deltas(raw_stream(upstream, body), "text_delta")) == 20
    body["simulate"] = {"chunks": 2}
    assert len(deltas(raw_stream(upstream, body), "text_delta")) == 2


def test_one_tool_is_called(upstream: SimulatedUpstream) -> None:
    message = direct(upstream).messages.create(
        model="m",
        max_tokens=200,
        messages=HELLO,
        tools=[WEATHER, TIME],
    )
    assert message.stop_reason == "tool_use"
    [call] = tool_uses(message)
    assert (call.name, call.input) == ("get_weather", {"city": "example"})
    assert call.id.startswith("toolu_")
    body = {"model": "m", "max_tokens": 200, "messages": HELLO, "tools": [WEATHER, TIME]}
    validate_anthropic_message(raw(upstream, body).json())


def test_parallel_tools_and_forced_tool(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    both = client.messages.create(
        model="m",
        max_tokens=200,
        messages=PARALLEL,
        tools=[WEATHER, TIME],
    )
    assert [b.name for b in tool_uses(both)] == ["get_weather", "get_time"]
    assert len({b.id for b in tool_uses(both)}) == 2
    forced = client.messages.create(
        model="m",
        max_tokens=200,
        messages=PARALLEL,
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [(b.name, b.input) for b in tool_uses(forced)] == [("get_time", {})]
    none = client.messages.create(
        model="m",
        max_tokens=200,
        messages=HELLO,
        tools=[WEATHER],
        tool_choice={"type": "none"},
    )
    assert none.stop_reason == "end_turn" and none.content[0].type == "text"


def test_tool_stream_and_tool_result(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    with client.messages.stream(
        model="m",
        max_tokens=200,
        messages=HELLO,
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_message()
    [call] = tool_uses(final)
    assert call.input == {"city": "example"}
    assert final.stop_reason == "tool_use"

    body = {"model": "m", "max_tokens": 200, "messages": HELLO, "tools": [WEATHER]}
    events = raw_stream(upstream, body)
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": start["content_block"]["id"],  # ids follow the body, which differs a little
        "name": "get_weather",
        "input": {},
    }
    parts = [d["partial_json"] for d in deltas(events, "input_json_delta")]
    assert parts[0] == "" and len(parts) > 2
    assert orjson.loads("".join(parts)) == call.input

    history: Any = [
        *HELLO,
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 degrees"}],
        },
    ]
    answer = client.messages.create(model="m", max_tokens=200, messages=history, tools=[WEATHER])
    assert answer.stop_reason == "end_turn"
    assert text_of(answer).endswith("The tool answered: 21 degrees")
    validate_anthropic_request(last_request(upstream))


def test_thinking_comes_first_with_a_signature(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    message = client.messages.create(
        model="m",
        max_tokens=2048,
        messages=HELLO,
        thinking=thinking,
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    block = message.content[0]
    assert block.type == "thinking" and block.thinking.startswith("[simulated]")
    assert base64.b64decode(block.signature, validate=True)
    with client.messages.stream(
        model="m",
        max_tokens=2048,
        messages=HELLO,
        thinking=thinking,
    ) as stream:
        final = stream.get_final_message()
    streamed = final.content[0]
    assert streamed.type == "thinking" and streamed.thinking == block.thinking
    assert blocks(final)[1:] == blocks(message)[1:]

    events = raw_stream(
        upstream, {"model": "m", "max_tokens": 2048, "messages": HELLO, "thinking": thinking}
    )
    start = events[1]["content_block"]
    assert start == {"type": "thinking", "thinking": "", "signature": ""}
    assert len(deltas(events, "signature_delta")) == 1 and deltas(events, "thinking_delta")

    adaptive = client.messages.create(
        model="m",
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "adaptive"},
    )
    assert adaptive.content[0].type == "thinking"
    disabled = client.messages.create(
        model="m",
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "disabled"},
    )
    assert [b.type for b in disabled.content] == ["text"]


def test_stop_sequence_and_max_tokens_cut_the_text(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    stopped = client.messages.create(
        model="m",
        max_tokens=100,
        messages=HELLO,
        stop_sequences=["zzz", "from"],
    )
    assert text_of(stopped) == "[simulated] Hello "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "from")
    with client.messages.stream(
        model="m",
        max_tokens=100,
        messages=HELLO,
        stop_sequences=["from"],
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "from")

    cut = client.messages.create(model="m", max_tokens=3, messages=HELLO)
    assert text_of(cut) == "[simulated] Hello from"
    assert (cut.stop_reason, cut.stop_sequence, cut.usage.output_tokens) == ("max_tokens", None, 3)
    events = raw_stream(upstream, {"model": "m", "max_tokens": 3, "messages": HELLO})
    assert events[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}


def test_cache_control_moves_tokens_to_cache_reads(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    system = "You are a careful assistant. " * 20
    plain = client.messages.create(model="m", max_tokens=100, messages=HELLO, system=system)
    cached = client.messages.create(
        model="m",
        max_tokens=100,
        messages=HELLO,
        system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
    )
    assert plain.usage.cache_read_input_tokens == 0
    assert cached.usage.cache_read_input_tokens == 145  # 580 characters
    assert cached.usage.cache_creation_input_tokens == 0
    total = cached.usage.input_tokens + cached.usage.cache_read_input_tokens
    assert total == plain.usage.input_tokens
    events = raw_stream(
        upstream,
        {
            "model": "m",
            "max_tokens": 100,
            "messages": HELLO,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        },
    )
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == 145


def test_count_tokens(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    counted = client.messages.count_tokens(model="m", messages=HELLO)
    sent = client.messages.create(model="m", max_tokens=100, messages=HELLO)
    assert counted.input_tokens == sent.usage.input_tokens == 4 + 3  # 11 characters
    with_image: Any = [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}, IMAGE]}
    ]
    assert client.messages.count_tokens(model="m", messages=with_image).input_tokens == 7 + 85
    reply = raw(upstream, {"model": "m", "messages": HELLO}, "/v1/messages/count_tokens")
    validate_anthropic("CountMessageTokensResponse", reply.json())
    validate_anthropic("CountMessageTokensParams", {"model": "m", "messages": HELLO})
    refused = raw(
        upstream, {"model": "m", "messages": HELLO, "max_tokens": 5}, "/v1/messages/count_tokens"
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"
    with pytest.raises(anthropic.BadRequestError, match="messages: Field required"):
        client.post("/v1/messages/count_tokens", cast_to=Message, body={"model": "m"})


def test_attachments_are_acknowledged(upstream: SimulatedUpstream) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
    }
    content: Any = [{"type": "text", "text": "look"}, IMAGE, IMAGE, document]
    message = direct(upstream).messages.create(
        model="m",
        max_tokens=100,
        messages=[{"role": "user", "content": content}],
    )
    assert text_of(message).endswith("You said: look (received: 1 document, 2 image)")
    validate_anthropic_request(last_request(upstream))


# --- refusals -----------------------------------------------------------------------------------

BASE: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": HELLO}
USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold"}
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no model", {"model": None}, "model: Field required"),
    ("model not a string", {"model": 5}, "model: String should have at least 1 character"),
    ("no max_tokens", {"max_tokens": None}, "max_tokens: Field required"),
    ("max_tokens 0", {"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ("max_tokens text", {"max_tokens": "9"}, "max_tokens: Input should be a valid integer"),
    ("no messages", {"messages": None}, "messages: Field required"),
    ("empty messages", {"messages": []}, "messages: at least one message is required"),
    (
        "system role",
        {"messages": [{"role": "system", "content": "x"}]},
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "empty text block",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}],
                }
            ]
        },
        "messages.0.content.1: text content blocks must be non-empty",
    ),
    (
        "empty content",
        {"messages": [{"role": "user", "content": ""}]},
        "messages.0: all messages must have non-empty content",
    ),
    (
        "temperature > 1",
        {"temperature": 1.5},
        "temperature: Input should be less than or equal to 1",
    ),
    (
        "temperature < 0",
        {"temperature": -0.1},
        "temperature: Input should be greater than or equal",
    ),
    (
        "small thinking budget",
        {"thinking": {"type": "enabled", "budget_tokens": 512}},
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    (
        "budget not under max_tokens",
        {"max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        "tool_use not answered next",
        {
            "messages": [
                *HELLO,
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": "and?"},
            ]
        },
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1",
    ),
    (
        "tool_use answered too late",
        {
            "messages": [
                *HELLO,
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": "wait"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [RESULT]},
            ]
        },
        "messages.1: `tool_use` ids were found without `tool_result` blocks",
    ),
    (
        "tool_result without tool_use",
        {"messages": [{"role": "user", "content": [RESULT]}]},
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1",
    ),
    (
        "whitespace stop sequence",
        {"stop_sequences": ["END", " \n"]},
        "stop_sequences: each stop sequence must contain non-whitespace",
    ),
    (
        "unknown field",
        {"frequency_penalty": 0.5},
        "frequency_penalty: Extra inputs are not permitted",
    ),
    (
        "forced tool with thinking",
        {
            "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [WEATHER],
            "tool_choice": {"type": "any"},
        },
        "Thinking may not be enabled when tool_choice forces tool use",
    ),
    (
        "trailing whitespace in prefill",
        {"messages": [*HELLO, {"role": "assistant", "content": "Sure "}]},
        "messages: final assistant content cannot end with trailing whitespace",
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"), [(c, m) for _, c, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_requests_are_refused_like_anthropic(
    upstream: SimulatedUpstream, changes: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    with pytest.raises(anthropic.BadRequestError) as caught:
        direct(upstream).post("/v1/messages", cast_to=Message, body=body)
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert message in (error.api_message or "")
    assert error.request_id is not None and error.request_id.startswith("req_sim")
    validate_anthropic_error(error.body)
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.APIStatusError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "api_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_fault_status_has_anthropic_shape(
    upstream: SimulatedUpstream, status: int, exception: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(exception) as caught:
        direct(upstream).messages.create(
            model="m",
            max_tokens=10,
            messages=HELLO,
            extra_body={"simulate": {"status": status, "retry_after": 2}},
        )
    error = caught.value
    assert (error.status_code, error.type) == (status, kind)
    assert error.api_message == f"simulated {status} error"
    assert error.response.headers["retry-after"] == "2"
    validate_anthropic_error(error.body)


def test_in_stream_error_is_raised_by_the_sdk(upstream: SimulatedUpstream) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        direct(upstream).messages.stream(
            model="m",
            max_tokens=100,
            messages=HELLO,
            extra_body={"simulate": {"error_after": 3}},
        ) as stream,
    ):
        stream.get_final_message()
    assert caught.value.type == "overloaded_error"
    assert caught.value.api_message == "simulated in-stream failure"

    body = {**BASE, "stream": True, "simulate": {"error_after": 3}}
    reply = raw(upstream, body)
    assert reply.content.endswith(STREAM_ERROR)
    assert STREAM_ERROR == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"simulated in-stream failure"}}\n\n'
    )
    events = validate_anthropic_stream(reply.content)
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "ping", "error"]


def test_cut_after_drops_the_connection(upstream: SimulatedUpstream) -> None:
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            upstream.base_url + "/v1/messages",
            json={**BASE, "stream": True, "simulate": {"cut_after": 4}},
            headers=HEADERS,
        ) as reply,
    ):
        for chunk in reply.iter_raw():
            received += chunk
    assert received.count(b"\n\n") == 4  # events before the cut
    # the SDK's transport (httpx2) raises its own RemoteProtocolError
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        direct(upstream).messages.stream(
            model="m",
            max_tokens=100,
            messages=HELLO,
            extra_body={"simulate": {"cut_after": 4}},
        ) as stream,
    ):
        stream.get_final_message()


def test_anthropic_version_header_is_required(upstream: SimulatedUpstream) -> None:
    reply = raw(upstream, BASE, headers={"x-api-key": KEY})
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    assert body["request_id"] == reply.headers["request-id"]
    validate_anthropic_error(body)


def test_wrong_key_and_bad_json_have_anthropic_shape(upstream: SimulatedUpstream) -> None:
    bad = anthropic.Anthropic(base_url=upstream.base_url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert caught.value.type == "authentication_error"
    validate_anthropic_error(caught.value.body)
    broken = httpx.post(
        upstream.base_url + "/v1/messages", content=b"{nope", headers=HEADERS, timeout=10
    )
    assert broken.status_code == 400
    validate_anthropic_error(broken.json())


def test_openai_in_stream_error_is_unchanged(upstream: SimulatedUpstream) -> None:
    body = {
        "model": "m",
        "messages": HELLO,
        "stream": True,
        "simulate": {"error_after": 1},
    }
    reply = httpx.post(
        upstream.base_url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert reply.content.endswith(
        b'data: {"error":{"message":"simulated in-stream failure","type":"server_error",'
        b'"param":null,"code":null}}\n\n'
    )


# --- the contract checks can fail ---------------------------------------------------------------


def good_stream(upstream: SimulatedUpstream) -> list[dict[str, Any]]:
    return raw_stream(upstream, {**BASE, "tools": [WEATHER]})


def encode(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def test_contracts_reject_broken_payloads(upstream: SimulatedUpstream) -> None:
    good = raw(upstream, BASE).json()
    validate_anthropic_message(good)
    for broken, why in [
        ({k: v for k, v in good.items() if k != "usage"}, "'usage' is a required property"),
        ({**good, "stop_reason": "done"}, "stop_reason"),
        ({**good, "content": [{"type": "text"}]}, "'text' is a required property"),
        ({**good, "content": [{"type": "tool_use", "id": "x", "name": "f"}]}, "'input'"),
    ]:
        with pytest.raises(AssertionError, match=why):
            validate_anthropic_message(broken)
    with pytest.raises(AssertionError, match="max_tokens"):
        validate_anthropic_request({"model": "m", "messages": HELLO})
    with pytest.raises(AssertionError, match="ErrorResponse"):
        validate_anthropic_error({"type": "error", "error": {"type": "teapot", "message": "x"}})


def test_contracts_reject_broken_streams(upstream: SimulatedUpstream) -> None:
    events = good_stream(upstream)
    validate_anthropic_stream(encode(events))
    tool_delta = next(i for i, e in enumerate(events) if e["type"] == "content_block_delta")
    wrong_delta = copy.deepcopy(events)
    wrong_delta[tool_delta]["delta"] = {"type": "text_delta", "text": "x"}
    skipped = copy.deepcopy(events)
    for event in skipped:
        if "index" in event:
            event["index"] = 1
    cases = [
        (encode(events[:-1]), "must end with message_stop"),
        (encode(events[1:]), "must begin with message_start"),
        (encode(wrong_delta), "text_delta in a tool_use block"),
        (encode(skipped), "block index 1, expected 0"),
        (encode([e for e in events if e["type"] != "content_block_stop"]), "message_delta while"),
        (encode([*events[:-1], events[-2], events[-1]]), "a second message_delta"),
        (encode(events).replace(b"event: ping\n", b"event: pong\n"), "differs from type"),
        (encode(events).replace(b"event: ping\n", b""), "differs from type"),
        (encode(events)[:-1], "ends mid-event"),
        (encode([{**events[0], "message": {"id": "x"}}, *events[1:]]), "MessageStartEvent"),
    ]
    for body, why in cases:
        with pytest.raises(AssertionError, match=why):
            validate_anthropic_stream(body)


def test_missing_spec_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("CROSSWAY_SPECS_DIR", str(tmp_path))
    anthropic_contracts._spec.cache_clear()
    try:
        with pytest.raises(SpecNotFoundError, match=r"anthropic\.openapi\.json"):
            anthropic_contracts._spec()
    finally:
        monkeypatch.undo()
        anthropic_contracts._spec.cache_clear()
