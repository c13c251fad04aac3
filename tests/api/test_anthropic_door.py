"""The Anthropic front door, through the official `anthropic` SDK.

Claude models pass through to the (simulated) Anthropic upstream untouched; GPT models are
translated to OpenAI's format and back. What Crossway sends upstream and what it answers are
checked against the published OpenAPI specs.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import pytest
from anthropic_contracts import (
    validate_anthropic_error,
    validate_anthropic_message,
    validate_anthropic_request,
    validate_anthropic_stream,
)
from conftest import MASTER_KEY, RunningGateway
from contracts import validate_openai

from crossway.testing import SimulatedUpstream

PDF = base64.b64encode(b"%PDF-1.4\n% simulated\n").decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n....").decode()
WEATHER = {
    "name": "get_weather",
    "description": "Weather by city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def claude(gateway: RunningGateway, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", MASTER_KEY)
    return anthropic.Anthropic(base_url=gateway.root, **kwargs)


@pytest.fixture
def sdk(gateway: RunningGateway) -> anthropic.Anthropic:
    return claude(gateway)


def last_request(upstream: SimulatedUpstream, suffix: str) -> Any:
    return next(r for r in reversed(upstream.requests) if r.path.endswith(suffix))


# --- Claude, passed through ---------------------------------------------------------------


def test_claude_passes_through_untouched(
    sdk: anthropic.Anthropic, upstream: SimulatedUpstream, gateway: RunningGateway
) -> None:
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    message = raw.parse()
    assert message.content[0].type == "text" and "hello there" in message.content[0].text
    assert message.usage.cache_read_input_tokens and message.usage.cache_read_input_tokens > 0
    sent = last_request(upstream, "/v1/messages")
    # the body went on as the client wrote it, with only the model resolved
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert (
        sent.headers["anthropic-version"] == raw.http_response.request.headers["anthropic-version"]
    )  # whatever the SDK sent, never pinned
    assert sent.headers["x-api-key"] != MASTER_KEY  # Crossway's own upstream key
    validate_anthropic_request(sent.body)
    validate_anthropic_message(raw.http_response.json())
    assert raw.http_response.headers["request-id"] == raw.http_response.headers["x-request-id"]
    event = gateway.event(raw.http_response.headers["request-id"])
    assert event.endpoint == "messages" and event.vendor == "anthropic" and event.status == 200
    assert event.usage is not None and event.usage.cached_tokens > 0
    assert event.usage.prompt_tokens > event.usage.cached_tokens


def test_claude_stream_is_relayed_event_by_event(
    sdk: anthropic.Anthropic, gateway: RunningGateway
) -> None:
    with sdk.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "stream please"}],
        extra_body={"simulate": {"chunks": 7}},
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) == 7 and "".join(texts) == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    raw = httpx.post(
        f"{gateway.root}/v1/messages",
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "raw stream"}],
        },
    )
    events = validate_anthropic_stream(raw.content)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    usage = gateway.event(raw.headers["request-id"]).usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


def test_claude_tools_and_thinking(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "tool_use"] and message.stop_reason == "tool_use"
    assert message.content[0].signature  # type: ignore[union-attr]


def test_count_tokens_passes_through_for_claude(
    sdk: anthropic.Anthropic, upstream: SimulatedUpstream
) -> None:
    counted = sdk.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "count me " * 20}]
    )
    assert counted.input_tokens > 10
    assert last_request(upstream, "/v1/messages/count_tokens").body["model"]


# --- GPT models, translated ---------------------------------------------------------------


def test_gpt_answers_in_anthropic_shape(
    sdk: anthropic.Anthropic, upstream: SimulatedUpstream, gateway: RunningGateway
) -> None:
    raw = sdk.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=64,
        stop_sequences=["STOP"],
        system="Be brief.",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe these"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    },
                ],
            }
        ],
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert "received: 1 file, 1 image_url" in message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    validate_anthropic_message(raw.http_response.json())
    sent = last_request(upstream, "/v1/chat/completions").body
    validate_openai("CreateChatCompletionRequest", sent)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_completion_tokens"] == 64 and sent["stop"] == ["STOP"]
    event = gateway.event(raw.http_response.headers["request-id"])
    assert event.vendor == "openai" and event.usage is not None
    assert event.usage.completion_tokens == message.usage.output_tokens


def test_gpt_tool_use_round_trip(sdk: anthropic.Anthropic, upstream: SimulatedUpstream) -> None:
    first = sdk.messages.create(
        model="gpt-4o-mini",
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "example"} and first.stop_reason == "tool_use"
    second = sdk.messages.create(
        model="gpt-4o-mini",
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [c.model_dump() for c in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21C"}],
            },
        ],
    )
    assert "The tool answered: 21C" in second.content[0].text  # type: ignore[union-attr]
    sent = last_request(upstream, "/v1/chat/completions").body
    validate_openai("CreateChatCompletionRequest", sent)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["messages"][2]["tool_call_id"] == call.id


def test_gpt_stream_in_anthropic_events(sdk: anthropic.Anthropic, gateway: RunningGateway) -> None:
    with sdk.messages.stream(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[{"role": "user", "content": "stream it"}],
        extra_body={"simulate": {"chunks": 5}},  # not translatable: dropped on the way
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == final.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"
    raw = httpx.post(
        f"{gateway.root}/v1/messages",
        headers={"authorization": f"Bearer {MASTER_KEY}", "anthropic-version": "2023-06-01"},
        json={
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            "stream": True,
            "tools": [WEATHER],
            "messages": [{"role": "user", "content": "[parallel] weather?"}],
        },
    )
    events = validate_anthropic_stream(raw.content)
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["tool_use"]
    deltas = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert deltas == '{"city":"example"}'
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    usage = gateway.event(raw.headers["request-id"]).usage
    assert usage is not None and usage.prompt_tokens > 0


def test_count_tokens_is_estimated_for_other_models(sdk: anthropic.Anthropic) -> None:
    short = sdk.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    long = sdk.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello " * 200}]
    )
    assert 1 <= short.input_tokens < long.input_tokens == 300


# --- errors in Anthropic's shape ---------------------------------------------------------


def test_errors_come_back_in_anthropic_shape(
    sdk: anthropic.Anthropic, gateway: RunningGateway
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert missing.value.request_id
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, api_key="sk-wrong").messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    for body, field in (
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "gpt-4o-mini", "max_tokens": 5}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ):
        resp = httpx.post(
            f"{gateway.root}/v1/messages", headers={"x-api-key": MASTER_KEY}, json=body
        )
        assert resp.status_code == 400 and field in resp.json()["error"]["message"]
        validate_anthropic_error(resp.json())
        assert resp.headers["x-should-retry"] == "false"
    resp = httpx.post(
        f"{gateway.root}/v1/messages", headers={"x-api-key": MASTER_KEY}, content=b"{nope"
    )
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"


def test_untranslatable_content_is_refused(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(
            model="gpt-4o-mini",
            max_tokens=5,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}],
                }
            ],
        )
    assert "cannot be translated" in str(refused.value)


def test_upstream_errors_keep_their_meaning(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"simulate": {"status": 429, "retry_after": 3}},
        )
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        sdk.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"simulate": {"status": 529}},
        )
    assert overloaded.value.status_code == 529


# --- faults on the translated path (set per provider: the body's `simulate` is dropped) ---


def test_translated_faults_reach_the_client_in_its_dialect(faulty_gateway: RunningGateway) -> None:
    faulty = faulty_gateway
    sdk = claude(faulty)
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(
            model="gpt-limited", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "7"
    validate_anthropic_error(limited.value.response.json())
    for model, kind in (("gpt-broken", "upstream_stream_error"), ("gpt-cut", "upstream_error")):
        raw = httpx.post(
            f"{faulty.root}/v1/messages",
            headers={"x-api-key": MASTER_KEY},
            json={
                "model": model,
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        events = validate_anthropic_stream(raw.content)
        assert events[-1]["type"] == "error", model
        event = faulty.event(raw.headers["request-id"])
        assert event.status >= 500 and event.error_type == kind
        with (
            pytest.raises(anthropic.APIStatusError),
            sdk.messages.stream(
                model=model, max_tokens=50, messages=[{"role": "user", "content": "x"}]
            ) as stream,
        ):
            list(stream.text_stream)


def test_long_tool_names_are_shortened_for_openai_and_restored(
    sdk: anthropic.Anthropic, upstream: SimulatedUpstream, gateway: RunningGateway
) -> None:
    long_name = "mcp__documents_server__" + "search_every_folder_" * 4  # 103 characters
    tool = {**WEATHER, "name": long_name}
    message = sdk.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[tool],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "search"}],
    )
    assert message.content[-1].type == "tool_use" and message.content[-1].name == long_name
    sent = last_request(upstream, "/v1/chat/completions").body
    short = sent["tools"][0]["function"]["name"]
    assert len(short) <= 64 and short != long_name
    raw = httpx.post(
        f"{gateway.root}/v1/messages",
        headers={"x-api-key": MASTER_KEY},
        json={
            "model": "gpt-4o-mini",
            "max_tokens": 100,
            "stream": True,
            "tools": [tool],
            "messages": [{"role": "user", "content": "search"}],
        },
    )
    events = validate_anthropic_stream(raw.content)
    names = [e["content_block"]["name"] for e in events if e["type"] == "content_block_start"]
    assert names == [long_name]


@pytest.mark.parametrize("model", ["deepseek-chat", "gpt-4o-mini"])
def test_sdk_stream_with_tools_through_openai_format_models(
    sdk: anthropic.Anthropic, upstream: SimulatedUpstream, model: str
) -> None:
    with sdk.messages.stream(
        model=model,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Rome?"}],
    ) as stream:
        final = stream.get_final_message()
    call = final.content[-1]
    assert call.type == "tool_use" and call.input == {"city": "example"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0
    sent = last_request(upstream, "/chat/completions")
    assert sent.body["model"] == model and sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
