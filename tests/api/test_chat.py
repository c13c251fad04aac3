"""Chat completions through the official openai SDK, against the simulated upstream."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from conftest import MASTER_KEY, UPSTREAM_KEY, RunningGateway
from contracts import validate_openai, validate_sse_chat_stream

from crossway.testing import SimulatedUpstream

USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4a50000000049454e44ae426082"
    )
).decode()


def test_plain_completion_reaches_upstream_and_returns_its_answer(
    gateway: RunningGateway, upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == (
        "[simulated] Hello from gpt-4o-mini. You said: hello there"
    )
    assert completion.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.body == {"model": "gpt-4o-mini", "messages": USER}
    validate_openai("CreateChatCompletionRequest", sent.body)
    validate_openai("CreateChatCompletionResponse", raw.http_response.json())
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-upstream-request-id"].startswith("sim-")
    assert raw.headers["x-crossway-provider"] == "openai"


def test_unknown_fields_survive_and_only_the_model_is_rewritten(
    gateway: RunningGateway, upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    extra = {
        "custom_field": {"nested": [1, 2, {"x": None}]},
        "seed": 7,
        "logit_bias": {"50256": -100},
        "metadata": {"team": "qa"},
    }
    client.chat.completions.create(
        model="azure-eu/gpt-4o", messages=USER, temperature=0.3, extra_body=extra
    )
    sent = upstream.requests[-1]
    assert sent.path == "/azure/openai/deployments/gpt4o-prod/chat/completions"
    assert sent.body == {"model": "gpt4o-prod", "messages": USER, "temperature": 0.3, **extra}


def test_usage_is_recorded_for_every_request(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=USER)
    completion = raw.parse()
    event = gateway.event(raw.headers["x-request-id"])
    assert event.model_requested == "fast"
    assert event.model == "gpt-4o-mini"
    assert event.vendor == "openai" and event.provider == "openai"
    assert event.status == 200 and event.error_type is None
    assert completion.usage is not None and event.usage is not None
    assert event.usage.prompt_tokens == completion.usage.prompt_tokens
    assert event.usage.completion_tokens == completion.usage.completion_tokens
    info = gateway.services.catalog.get("gpt-4o-mini")
    assert info is not None
    expected = (
        completion.usage.prompt_tokens * info.pricing.input
        + completion.usage.completion_tokens * info.pricing.output
    ) / 1e6
    assert event.cost_usd == pytest.approx(expected)
    assert event.latency_ms > 0
    assert event.upstream_request_id == raw.headers["x-upstream-request-id"]


def test_stream_passes_events_and_strips_the_usage_crossway_asked_for(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    with httpx.Client() as http:
        resp = http.post(
            f"{gateway.base_url}/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "gpt-4o-mini", "messages": USER, "stream": True},
        )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks = validate_sse_chat_stream(resp.content)
    assert all("usage" not in c for c in chunks), "the client did not ask for usage"
    assert all(c["choices"] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "[simulated] Hello from gpt-4o-mini. You said: hello there"
    # Crossway asked upstream for usage, and recorded it
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    event = gateway.event(resp.headers["x-request-id"])
    assert event.stream and event.status == 200
    assert event.usage is not None and event.usage.completion_tokens == 8
    assert event.ttft_ms is not None and event.ttft_ms <= event.latency_ms


def test_stream_keeps_usage_when_the_client_asked(
    gateway: RunningGateway, upstream: SimulatedUpstream, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 8
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


def test_tools_round_trip_non_streaming(client: openai.OpenAI, upstream: SimulatedUpstream) -> None:
    first = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )  # type: ignore[list-item]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city":"example"}'  # type: ignore[union-attr]
    second = client.chat.completions.create(
        model="gpt-4o",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
    )
    assert second.choices[0].message.content.endswith("The tool answered: sunny, 21C")  # type: ignore[union-attr]
    validate_openai("CreateChatCompletionRequest", upstream.requests[-1].body)


def test_tools_stream_parallel_calls_with_fragmented_arguments(client: openai.OpenAI) -> None:
    other = {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    }
    stream = client.chat.completions.create(
        model="gpt-4o",
        stream=True,
        tools=[WEATHER_TOOL, other],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "[parallel] weather and time"}],
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "args": ""})
                if tc.function and tc.function.name:
                    entry["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    entry["args"] += tc.function.arguments
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert calls == {
        0: {"name": "get_weather", "args": '{"city":"example"}'},
        1: {"name": "get_time", "args": '{"zone":"example"}'},
    }


def test_images_pdfs_and_audio_pass_through_untouched(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    content = [
        {"type": "text", "text": "what is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{TINY_PNG}", "detail": "high"},
        },
        {
            "type": "file",
            "file": {
                "filename": "doc.pdf",
                "file_data": "data:application/pdf;base64,JVBERi0xLjQK",
            },
        },
        {"type": "input_audio", "input_audio": {"data": "UklGRgAAAABXQVZF", "format": "wav"}},
    ]
    messages = [{"role": "user", "content": content}]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    text = answer.choices[0].message.content or ""
    assert "(received: 1 file, 2 image_url, 1 input_audio)" in text
    assert upstream.requests[-1].body["messages"] == messages
    validate_openai("CreateChatCompletionRequest", upstream.requests[-1].body)


async def test_async_client_plain_and_streaming(gateway: RunningGateway) -> None:
    client = gateway.async_client()
    done = await client.chat.completions.create(model="deepseek-chat", messages=USER)  # type: ignore[arg-type]
    assert done.choices[0].message.content == (
        "[simulated] Hello from deepseek-chat. You said: hello there"
    )
    stream = await client.chat.completions.create(
        model="deepseek-chat",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
    )
    pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p or "" for p in pieces) == done.choices[0].message.content
    await client.close()


@pytest.mark.parametrize(
    ("model", "path", "auth_header", "upstream_model"),
    [
        ("openai/gpt-4.1", "/v1/chat/completions", "authorization", "gpt-4.1"),
        (
            "azure-eu/gpt-4o",
            "/azure/openai/deployments/gpt4o-prod/chat/completions",
            "api-key",
            "gpt4o-prod",
        ),
        (
            "deepseek/deepseek-chat",
            "/deepseek/v1/chat/completions",
            "authorization",
            "deepseek-chat",
        ),
        (
            "mistral/mistral-large-latest",
            "/mistral/v1/chat/completions",
            "authorization",
            "mistral-large-latest",
        ),
        ("x/grok-3", "/xai/v1/chat/completions", "authorization", "grok-3"),
        ("volcengine/doubao-seed-1-6", "/api/v3/chat/completions", "authorization", None),
        (
            "local/llama-3.1-8b-instruct",
            "/local/v1/chat/completions",
            None,
            "llama-3.1-8b-instruct",
        ),
        ("meta-llama/Llama-3.1-8B", "/local/v1/chat/completions", None, "meta-llama/Llama-3.1-8B"),
    ],
)
def test_every_openai_format_vendor(
    client: openai.OpenAI,
    upstream: SimulatedUpstream,
    model: str,
    path: str,
    auth_header: str | None,
    upstream_model: str | None,
) -> None:
    for stream in (False, True):
        if stream:
            text = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model=model,
                    messages=USER,  # type: ignore[arg-type]
                    stream=True,
                )
                if c.choices
            )
        else:
            text = (
                client.chat.completions.create(model=model, messages=USER)
                .choices[0]
                .message.content
                or ""
            )  # type: ignore[arg-type]
        assert text.startswith("[simulated] Hello from")
        sent = upstream.requests[-1]
        assert sent.path == path
        if auth_header == "api-key":
            assert sent.headers["api-key"] == UPSTREAM_KEY
            assert "authorization" not in sent.headers
            assert sent.query == {"api-version": "2024-10-21"}
        elif auth_header:
            assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        else:
            assert "authorization" not in sent.headers
        if upstream_model:
            assert sent.body["model"] == upstream_model
        # Mistral rejects stream_options: Crossway must not add it there
        if stream:
            assert ("stream_options" in sent.body) == (not model.startswith("mistral/"))
