"""The Gemini door, and Gemini upstreams: the nine paths, client format by upstream format.

Clients: the official `google-genai`, `openai` and `anthropic` SDKs. Upstreams: the simulated
upstream speaking OpenAI's format (gpt-4o-mini), Anthropic's (claude-sonnet-4-6) and
Gemini's (gemini-2.5-flash on AI Studio paths; gemini-on-vertex on Vertex paths). What Crossway
sends a Gemini upstream and answers a Gemini client is checked against the official protobuf
schema (tests/gemini_contracts.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import (
    MASTER_KEY,
    UPSTREAM_KEY,
    BackgroundLoop,
    RunningGateway,
    start_gateway,
    upstream_settings,
)
from contracts import validate_openai, validate_sse_chat_stream
from gemini_contracts import (
    validate_gemini_error,
    validate_gemini_request,
    validate_gemini_response,
    validate_gemini_stream,
)
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from crossway.testing import SimulatedUpstream
from crossway.testing.media import PNG as GENERATED_PNG

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather by city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
)
MODELS = ["gemini-2.5-flash", "gpt-4o-mini", "claude-sonnet-4-6"]
_CLIENTS: list[genai.Client] = []  # a genai.Client closes its connection when collected


def google(gw: RunningGateway) -> genai.Client:
    client = genai.Client(api_key=MASTER_KEY, http_options=types.HttpOptions(base_url=gw.root))
    _CLIENTS.append(client)
    return client


def raw_chat_stream(client: openai.OpenAI, **body: Any) -> list[dict[str, Any]]:
    """A streamed chat completion over plain HTTP, its chunks checked against OpenAI's schema."""
    stream = httpx.post(
        f"{client.base_url}chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={**body, "stream": True},
    )
    return validate_sse_chat_stream(stream.content)


def sent_to(upstream: SimulatedUpstream, fragment: str) -> Any:
    return next(r for r in reversed(upstream.requests) if fragment in r.path)


@pytest.mark.parametrize("model", MODELS)
def test_generate_content_reaches_every_format(
    gateway: RunningGateway, upstream: SimulatedUpstream, model: str
) -> None:
    client = google(gateway)
    answer = client.models.generate_content(
        model=model,
        contents=[
            types.Content(
                role="user",
                parts=[
                    types.Part(text="describe this"),
                    types.Part(inline_data=types.Blob(mime_type="image/png", data=PNG)),
                ],
            )
        ],
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", max_output_tokens=200, temperature=0.3
        ),
    )
    assert answer.text and "describe this" in answer.text
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    if model.startswith("gemini"):
        sent = sent_to(upstream, f"/v1beta/models/{model}:generateContent")
        assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY
        validate_gemini_request(sent.body)
        assert "received: 1 inlineData" in answer.text  # passed through untouched
    else:
        assert "received: 1 image" in answer.text  # translated into the upstream's parts


@pytest.mark.parametrize("model", MODELS)
def test_streams_with_tools_from_every_format(gateway: RunningGateway, model: str) -> None:
    client = google(gateway)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], max_output_tokens=200
    )
    chunks = list(
        client.models.generate_content_stream(
            model=model, contents="weather in Paris?", config=config
        )
    )
    calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
    assert [c.name for c in calls] == ["get_weather"] and calls[0].args == {"city": "example"}
    assert (
        chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    )
    text = list(client.models.generate_content_stream(model=model, contents="just talk"))
    assert "just talk" in "".join(c.text or "" for c in text)
    raw = httpx.post(
        f"{gateway.root}/v1beta/models/{model}:streamGenerateContent?alt=sse",
        headers={"x-goog-api-key": MASTER_KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "raw stream"}]}]},
    )
    events = validate_gemini_stream(raw.content)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["totalTokenCount"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_a_function_response_turn(
    gateway: RunningGateway, upstream: SimulatedUpstream, model: str
) -> None:
    client = google(gateway)
    tools = [types.Tool(function_declarations=[WEATHER])]
    first = client.models.generate_content(
        model=model, contents="weather in Paris?", config=types.GenerateContentConfig(tools=tools)
    )
    assert first.candidates and first.candidates[0].content
    call_part = first.candidates[0].content.parts[-1]  # type: ignore[index]
    assert call_part.function_call and call_part.function_call.name == "get_weather"
    second = client.models.generate_content(
        model=model,
        contents=[
            types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
            first.candidates[0].content,
            types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=call_part.function_call.id,
                            name="get_weather",
                            response={"result": "21C"},
                        )
                    )
                ],
            ),
        ],
        config=types.GenerateContentConfig(tools=tools),
    )
    assert second.text and "The tool answered" in second.text and "21C" in second.text


def test_count_tokens_and_embeddings(gateway: RunningGateway, upstream: SimulatedUpstream) -> None:
    client = google(gateway)
    native = client.models.count_tokens(model="gemini-2.5-flash", contents="count these words")
    estimated = client.models.count_tokens(model="gpt-4o-mini", contents="count these words")
    assert native.total_tokens and estimated.total_tokens
    assert sent_to(upstream, ":countTokens")
    for model in ("gemini-embedding-001", "text-embedding-3-small"):
        result = client.models.embed_content(
            model=model,
            contents=["first text", "second text"],
            config=types.EmbedContentConfig(output_dimensionality=64),
        )
        assert result.embeddings and len(result.embeddings) == 2
        assert all(len(e.values or []) == 64 for e in result.embeddings)
    sent = sent_to(upstream, "/embeddings")  # the OpenAI-format one, translated
    assert sent.body["input"] == ["first text", "second text"] and sent.body["dimensions"] == 64


def test_keys_paths_and_array_streams(gateway: RunningGateway) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for path, headers in (
        (f"/v1beta/models/gpt-4o-mini:generateContent?key={MASTER_KEY}", {}),
        ("/v1/projects/p/locations/us-central1/publishers/google/models/gpt-4o-mini:generateContent",
         {"authorization": f"Bearer {MASTER_KEY}"}),
        ("/v1beta1/publishers/google/models/gemini-on-vertex:generateContent",
         {"x-goog-api-key": MASTER_KEY}),
    ):  # fmt: skip
        resp = httpx.post(gateway.root + path, headers=headers, json=body)
        assert resp.status_code == 200, (path, resp.text)
        validate_gemini_response(resp.json())
    array = httpx.post(
        f"{gateway.root}/v1beta/models/claude-sonnet-4-6:streamGenerateContent",
        headers={"x-goog-api-key": MASTER_KEY},
        json=body,
    )
    assert array.headers["content-type"].startswith("application/json")
    chunks = validate_gemini_stream(array.content)
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_errors_in_gemini_shape(gateway: RunningGateway, faulty_gateway: RunningGateway) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    missing = httpx.post(
        f"{gateway.root}/v1beta/models/no-such-model:generateContent",
        headers={"x-goog-api-key": MASTER_KEY},
        json=body,
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    validate_gemini_error(missing.json())
    bad_key = httpx.post(
        f"{gateway.root}/v1beta/models/gpt-4o-mini:generateContent?key=wrong", json=body
    )
    assert bad_key.status_code == 401 and bad_key.json()["error"]["status"] == "UNAUTHENTICATED"
    empty = httpx.post(
        f"{gateway.root}/v1beta/models/gpt-4o-mini:generateContent",
        headers={"x-goog-api-key": MASTER_KEY},
        json={"contents": []},
    )
    assert empty.status_code == 400 and "contents" in empty.json()["error"]["message"]
    with pytest.raises(genai_errors.ClientError) as refused:
        google(gateway).models.generate_content(
            model="claude-sonnet-4-6",
            contents=[types.Content(role="user", parts=[types.Part(
                file_data=types.FileData(file_uri="gs://b/a.mp3", mime_type="audio/mp3"))])],
        )  # fmt: skip
    assert refused.value.code == 400
    # an Anthropic upstream's 529 reaches a Gemini client as 503 UNAVAILABLE
    overloaded = httpx.post(
        f"{faulty_gateway.root}/v1beta/models/claude-overloaded:generateContent",
        headers={"x-goog-api-key": MASTER_KEY},
        json=body,
    )
    assert overloaded.status_code == 503
    assert overloaded.json()["error"]["status"] == "UNAVAILABLE"


# --- OpenAI and Anthropic clients to Gemini upstreams --------------------------------------


def test_openai_sdk_reaches_gemini(client: openai.OpenAI, upstream: SimulatedUpstream) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,
    )
    first = raw.parse()
    validate_openai("CreateChatCompletionResponse", raw.http_response.json())
    sent = sent_to(upstream, "gemini-2.5-flash:generateContent")
    validate_gemini_request(sent.body)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"  # Gemini says STOP; clients need this
    signature = raw.http_response.json()["choices"][0]["message"]["tool_calls"][0]["extra_content"]
    assert signature["google"]["thought_signature"]
    client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "user", "content": "weather?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "21C"},
        ],
        tools=tools,
    )
    replay = sent_to(upstream, "gemini-2.5-flash:generateContent").body
    validate_gemini_request(replay)
    model_turn = replay["contents"][1]["parts"][0]
    assert model_turn["thoughtSignature"] == signature["google"]["thought_signature"]
    assert replay["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    chunks = raw_chat_stream(
        client,
        model="gemini-2.5-flash",
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream please"}],
    )
    assert "stream please" in "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_anthropic_sdk_reaches_gemini(gateway: RunningGateway, upstream: SimulatedUpstream) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.root, api_key=MASTER_KEY, max_retries=0)
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {
        "city": {"type": "string"}}}}]  # fmt: skip
    message = sdk.messages.create(
        model="gemini-2.5-flash", max_tokens=100, tools=tools,
        messages=[{"role": "user", "content": "weather?"}],
    )  # fmt: skip
    assert message.stop_reason == "tool_use" and message.content[-1].type == "tool_use"
    validate_gemini_request(sent_to(upstream, "gemini-2.5-flash:generateContent").body)
    with sdk.messages.stream(
        model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "hello" in text and final.usage.output_tokens > 0


# --- images by URL to AI Studio: fetched, inlined, and never from private networks ---------


@pytest.fixture(scope="module")
def image_server(background: BackgroundLoop) -> Iterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: %d\r\n\r\n"
        writer.write(head % len(PNG) + PNG)
        await writer.drain()
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(serve, "127.0.0.1", 0)

    server = background.run(start())
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/cat.png"

    async def stop() -> None:
        server.close()

    background.run(stop())


@pytest.fixture(scope="module")
def fetching_gateway(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> Iterator[RunningGateway]:
    settings = upstream_settings(upstream.base_url, media_fetch={"private_hosts": ["127.0.0.1"]})
    running = start_gateway(background, settings)
    yield running
    running.stop()


def test_an_image_url_is_fetched_for_ai_studio(
    fetching_gateway: RunningGateway, upstream: SimulatedUpstream, image_server: str
) -> None:
    client = fetching_gateway.client()
    answer = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": image_server}},
                ],
            }
        ],
    )
    assert "received: 1 inlineData" in (answer.choices[0].message.content or "")
    part = sent_to(upstream, "gemini-2.5-flash:generateContent").body["contents"][0]["parts"][1]
    assert part["inlineData"] == {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.7/a.png"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="gemini-2.5-flash",
                messages=[
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
                ],
            )
        assert "private" in str(refused.value)


def test_vertex_answers_to_the_google_pin_and_claude_clients_send_images(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "pinned"}]}]}
    pinned = httpx.post(
        f"{gateway.root}/v1beta/models/gemini-on-vertex:generateContent",
        headers={"x-goog-api-key": MASTER_KEY, "vendor": "google"},
        json=body,
    )
    assert pinned.status_code == 200 and pinned.headers["x-crossway-provider"] == "vertex"
    assert sent_to(upstream, "/publishers/google/models/gemini-2.5-flash:generateContent")
    sdk = anthropic.Anthropic(base_url=gateway.root, api_key=MASTER_KEY, max_retries=0)
    png = base64.b64encode(PNG).decode()
    with sdk.messages.stream(
        model="gemini-2.5-flash",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png},
                    },
                ],
            }
        ],
    ) as stream:
        text = "".join(stream.text_stream)
    assert "received: 1 inlineData" in text
    sent = sent_to(upstream, "gemini-2.5-flash:streamGenerateContent")
    assert sent.query.get("alt") == "sse"
    validate_gemini_request(sent.body)


def test_openai_embeddings_from_gemini(
    client: openai.OpenAI, upstream: SimulatedUpstream, gateway: RunningGateway
) -> None:
    """The openai SDK asks for base64 by default: little-endian float32, decoded by the SDK."""
    raw = client.embeddings.with_raw_response.create(
        model="gemini-embedding-001", input=["first", "second", "third"], dimensions=32
    )
    result = raw.parse()
    # Gemini counts no tokens for embeddings: 16 characters at four a token, billed
    assert result.usage.prompt_tokens == 4
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.usage is not None and event.usage.prompt_tokens == 4
    assert event.cost_usd == pytest.approx(4 * 0.15 / 1e6)
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(d.embedding) == 32 for d in result.data)
    sent = sent_to(upstream, "gemini-embedding-001:batchEmbedContents").body
    assert [r["content"]["parts"][0]["text"] for r in sent["requests"]] == [
        "first",
        "second",
        "third",
    ]
    floats = client.embeddings.create(
        model="gemini-embedding-001", input="one", encoding_format="float"
    )
    assert isinstance(floats.data[0].embedding[0], float)
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="gemini-embedding-001", input=[[1, 2, 3]])
    assert refused.value.body["param"] == "input"  # type: ignore[index]


def test_chat_images_from_a_gemini_image_model(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash-image",
        messages=[{"role": "user", "content": "draw a lighthouse"}],
        extra_body={"modalities": ["image", "text"]},
    )
    message = raw.http_response.json()["choices"][0]["message"]
    assert "draw a lighthouse" in message["content"]
    url = message["images"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    sent = sent_to(upstream, "gemini-2.5-flash-image:generateContent").body
    assert sent["generationConfig"]["responseModalities"] == ["IMAGE", "TEXT"]
    validate_gemini_request(sent)
    plain = client.chat.completions.create(
        model="gemini-2.5-flash-image", messages=[{"role": "user", "content": "no picture"}]
    )
    assert "images" not in plain.model_dump()["choices"][0]["message"] or not getattr(
        plain.choices[0].message, "images", None
    )


def test_streamed_chat_images_from_a_gemini_image_model(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    stream = client.chat.completions.create(
        model="gemini-2.5-flash-image",
        messages=[{"role": "user", "content": "draw a lighthouse"}],
        modalities=["image", "text"],  # type: ignore[list-item]  # the SDK types text/audio
        stream=True,
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    images = [i for d in deltas for i in (d.model_extra or {}).get("images") or ()]
    expected = "data:image/png;base64," + base64.b64encode(GENERATED_PNG).decode()
    assert images == [{"type": "image_url", "image_url": {"url": expected}, "index": 0}]
    assert "draw a lighthouse" in "".join(d.content or "" for d in deltas)
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    sent = sent_to(upstream, "gemini-2.5-flash-image:streamGenerateContent").body
    assert sent["generationConfig"]["responseModalities"] == ["IMAGE", "TEXT"]
    validate_gemini_request(sent)
    validated = raw_chat_stream(  # extra delta fields are allowed
        client,
        model="gemini-2.5-flash-image",
        modalities=["image", "text"],
        messages=[{"role": "user", "content": "draw a lighthouse"}],
    )
    assert sum("images" in c["choices"][0]["delta"] for c in validated if c["choices"]) == 1
    plain = client.chat.completions.create(
        model="gemini-2.5-flash-image",
        messages=[{"role": "user", "content": "no picture"}],
        stream=True,
    )
    assert not any((c.choices[0].delta.model_extra or {}).get("images") for c in plain if c.choices)
