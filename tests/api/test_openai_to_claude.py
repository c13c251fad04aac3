"""The official `openai` SDK reaching Claude models: chat completions translated to Messages."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import pytest
from anthropic_contracts import validate_anthropic_request
from conftest import MASTER_KEY, RunningGateway
from contracts import validate_openai, validate_sse_chat_stream

from crossway.testing import SimulatedUpstream

PDF = base64.b64encode(b"%PDF-1.4\n% simulated\n").decode()
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    },
]


def sent_to_anthropic(upstream: SimulatedUpstream) -> Any:
    found = next(r for r in reversed(upstream.requests) if r.path.endswith("/v1/messages"))
    validate_anthropic_request(found.body)
    return found


def test_chat_completion_from_claude(
    client: openai.OpenAI, upstream: SimulatedUpstream, gateway: RunningGateway
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "hello claude"},
        ],
        temperature=1.7,
    )
    completion = raw.parse()
    assert "hello claude" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    validate_openai("CreateChatCompletionResponse", raw.http_response.json())
    sent = sent_to_anthropic(upstream)
    assert sent.body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Answer in English."},
    ]
    assert sent.body["max_tokens"] == 4096  # Anthropic requires it; the documented default
    assert sent.body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert sent.headers["anthropic-version"] == "2023-06-01"
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.vendor == "anthropic" and event.usage == _usage(completion)


def _usage(completion: Any) -> Any:
    from crossway.ir import Usage

    u = completion.usage
    return Usage(
        u.prompt_tokens,
        u.completion_tokens,
        u.prompt_tokens_details.cached_tokens,
        u.completion_tokens_details.reasoning_tokens,
        getattr(u.prompt_tokens_details, "cache_write_tokens", None) or 0,
    )


def test_cache_tokens_keep_prompt_plus_completion_equal_total(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    # cache_control is not an OpenAI field; the system prompt is marked through Anthropic's
    # own door in the pass-through test. Here: a plain request has no cached tokens.
    completion = client.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}]
    )
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_tools_parallel_and_results(client: openai.OpenAI, upstream: SimulatedUpstream) -> None:
    first = client.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "user", "content": "[parallel] weather and time?"}],
        tools=TOOLS,
        parallel_tool_calls=True,
    )
    choice = first.choices[0]
    calls = choice.message.tool_calls or []
    assert choice.finish_reason == "tool_calls" and [c.function.name for c in calls] == [  # type: ignore[union-attr]
        "get_weather",
        "get_time",
    ]
    second = client.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "user", "content": "[parallel] weather and time?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": calls[0].id, "content": "21C"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
        ],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    assert second.choices[0].message.content is not None
    body = sent_to_anthropic(upstream).body
    results = body["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result"]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_time",
        "disable_parallel_tool_use": True,
    }


def test_stream_from_claude_with_tools(client: openai.OpenAI, gateway: RunningGateway) -> None:
    resp = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={
            "model": "claude-sonnet-4-6",
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "[parallel] both please"}],
        },
    )
    chunks = validate_sse_chat_stream(resp.content)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for tc in choice["delta"].get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"name": "", "args": ""})
                slot["name"] += tc.get("function", {}).get("name") or ""
                slot["args"] += tc.get("function", {}).get("arguments") or ""
    assert calls == {
        0: {"name": "get_weather", "args": '{"city":"example"}'},
        1: {"name": "get_time", "args": '{"zone":"example"}'},
    }
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    stream = client.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "plain"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "plain" in text


def test_thinking_comes_back_as_reasoning_and_goes_back_signed(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    first: Any = client.chat.completions.create(
        model="claude-sonnet-4-6",
        reasoning_effort="medium",
        tools=TOOLS[:1],
        messages=[{"role": "user", "content": "weather?"}],
    )
    message = first.choices[0].message
    assert message.reasoning_content and message.thinking_blocks[0]["signature"]
    assert sent_to_anthropic(upstream).body["thinking"] == {
        "type": "enabled",
        "budget_tokens": 2048,
    }
    client.chat.completions.create(
        model="claude-sonnet-4-6",
        reasoning_effort="medium",
        tools=TOOLS[:1],
        messages=[
            {"role": "user", "content": "weather?"},
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "21C"},
        ],
    )
    replayed = sent_to_anthropic(upstream).body
    assert replayed["messages"][1]["content"][0]["type"] == "thinking"
    assert replayed["thinking"]["type"] == "enabled"
    # without the signed blocks, thinking is switched off for that turn instead of failing
    stripped = message.model_dump(exclude_none=True)
    stripped.pop("thinking_blocks")
    client.chat.completions.create(
        model="claude-sonnet-4-6",
        reasoning_effort="medium",
        tools=TOOLS[:1],
        messages=[
            {"role": "user", "content": "weather?"},
            stripped,
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "21C"},
        ],
    )
    assert "thinking" not in sent_to_anthropic(upstream).body


def test_images_and_pdfs_reach_claude(client: openai.OpenAI, upstream: SimulatedUpstream) -> None:
    completion = client.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {
                        "type": "file",
                        "file": {
                            "filename": "a.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF}",
                        },
                    },
                ],
            }
        ],
    )
    assert "received: 1 document, 1 image" in (completion.choices[0].message.content or "")
    blocks = sent_to_anthropic(upstream).body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.png"},
    }
    assert blocks[2]["source"] == {"type": "base64", "media_type": "application/pdf", "data": PDF}


@pytest.mark.parametrize(
    ("extra", "content", "field"),
    [
        ({"n": 2}, "x", "n"),
        (
            {},
            [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            "messages[0].content[0]",
        ),
        (
            {},
            [{"type": "file", "file": {"file_id": "file-abc"}}],
            "messages[0].content[0].file.file_id",
        ),
    ],
)
def test_untranslatable_requests_are_refused(
    client: openai.OpenAI, extra: dict[str, Any], content: Any, field: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": content}],
            **extra,
        )
    body: Any = refused.value.body
    assert body["param"] == field
    assert refused.value.response.headers["x-should-retry"] == "false"


def test_claude_errors_reach_openai_clients_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": "x"}],
            stop=["   "],  # dropped: Anthropic refuses whitespace-only sequences
            extra_body={"thinking": "not translated"},
            max_tokens=0,
        )
    body: Any = bad.value.body
    assert "max_tokens" in body["message"]


def test_streamed_thinking_carries_its_signature(gateway: RunningGateway) -> None:
    resp = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={
            "model": "claude-sonnet-4-6",
            "stream": True,
            "reasoning_effort": "low",
            "messages": [{"role": "user", "content": "think first"}],
        },
    )
    chunks = validate_sse_chat_stream(resp.content)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    blocks = [b for d in deltas for b in d.get("thinking_blocks") or []]
    assert reasoning and blocks and blocks[0]["thinking"] == reasoning and blocks[0]["signature"]
    assert "think first" in "".join(d.get("content") or "" for d in deltas)


@pytest.mark.parametrize(
    ("model", "kind"),
    [("claude-broken", "overloaded_error"), ("claude-cut", "upstream_error")],
)
def test_claude_failing_mid_stream_ends_with_an_openai_error(
    faulty_gateway: RunningGateway, model: str, kind: str
) -> None:
    client = faulty_gateway.client()
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass
    resp = httpx.post(
        f"{faulty_gateway.base_url}/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    last = [e for e in resp.text.split("\n\n") if e.strip()][-1]
    assert last.startswith("data: {") and '"error"' in last
    event = faulty_gateway.event(resp.headers["x-request-id"])
    assert event.status >= 500 and event.error_type == kind
    # what the upstream said it used before it failed is still on record
    assert event.usage is not None and event.usage.prompt_tokens > 0


def test_overloaded_claude_is_a_server_error_for_openai_clients(
    faulty_gateway: RunningGateway,
) -> None:
    with pytest.raises(openai.InternalServerError) as overloaded:
        faulty_gateway.client().chat.completions.create(
            model="claude-overloaded", messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 529
    body: Any = overloaded.value.body
    assert "overloaded" in body["message"].lower() or "529" in body["message"]
