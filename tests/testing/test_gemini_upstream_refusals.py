"""The simulated upstream's Gemini API refusing what Google's refuses, its faults, and
contract checks that can fail (the rest is in test_gemini_upstream.py)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from gemini_contracts import (
    validate_gemini_count_tokens,
    validate_gemini_embed,
    validate_gemini_error,
    validate_gemini_request,
    validate_gemini_response,
    validate_gemini_stream,
)
from gemini_helpers import (
    HELLO,
    KEY,
    MODEL,
    STUDIO,
    TOOLS,
    VERTEX,
    generate,
    raw,
    refused,
    stream,
    studio,
    vertex,
)
from google import genai
from google.genai import errors, types

from crossway.testing import SimulatedUpstream
from crossway.testing.gemini import STREAM_ERROR

# --- refusals -----------------------------------------------------------------------------------

CALL: Any = {"functionCall": {"name": "get_weather", "args": {}}}
ANSWER: Any = {"functionResponse": {"name": "get_weather", "response": {"ok": True}}}
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown top-level field",
        {"contents": HELLO, "temperature": 1},
        'Invalid JSON payload received. Unknown name "temperature": Cannot find field.',
    ),
    (
        "unknown generationConfig field",
        {"contents": HELLO, "generationConfig": {"maxTokens": 5}},
        "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': "
        "Cannot find field.",
    ),
    (
        "unknown part field",
        {"contents": [{"parts": [{"txt": "hi"}]}]},
        "Unknown name \"txt\" at 'contents[0].parts[0]': Cannot find field.",
    ),
    ("no contents", {"contents": []}, "* GenerateContentRequest.contents: contents is not"),
    (
        "empty parts",
        {"contents": [{"role": "user", "parts": []}]},
        "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.",
    ),
    (
        "assistant role",
        {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]},
        "Please use a valid role: user, model.",
    ),
    (
        "response without call",
        {"contents": [*HELLO, {"role": "user", "parts": [ANSWER]}]},
        "Please ensure that function response turn comes immediately after a function call turn.",
    ),
    (
        "too few responses",
        {
            "contents": [
                *HELLO,
                {"role": "model", "parts": [CALL, CALL]},
                {"role": "user", "parts": [ANSWER]},
            ]
        },
        "Please ensure that the number of function response parts is equal to the number of "
        "function call parts of the function call turn.",
    ),
    (
        "call answered by text",
        {
            "contents": [
                *HELLO,
                {"role": "model", "parts": [CALL]},
                {"role": "user", "parts": [{"text": "and?"}]},
            ]
        },
        "Please ensure that the number of function response parts",
    ),
    (
        "web file uri on AI Studio",
        {
            "contents": [
                {
                    "parts": [
                        {"text": "see"},
                        {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png"}},
                    ]
                }
            ]
        },
        "Unsupported file uri: https://x.test/a.png",
    ),
    (
        "declaration without name",
        {"contents": HELLO, "tools": [{"functionDeclarations": [{"description": "x"}]}]},
        "* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty.",
    ),
    (
        "parameters and parametersJsonSchema",
        {
            "contents": HELLO,
            "tools": [
                {
                    "functionDeclarations": [
                        {"name": "f", "parameters": {"type": "OBJECT"}, "parametersJsonSchema": {}}
                    ]
                }
            ],
        },
        "parameters and parameters_json_schema are mutually exclusive",
    ),
    (
        "json mime type with tools",
        {
            "contents": HELLO,
            "tools": TOOLS,
            "generationConfig": {"responseMimeType": "application/json"},
        },
        "Function calling with a response mime type: 'application/json' is unsupported",
    ),
    (
        "bad calling mode",
        {"contents": HELLO, "tools": TOOLS, "toolConfig": {"functionCallingConfig": {"mode": "X"}}},
        "Invalid value at 'tool_config.function_calling_config.mode'",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_requests_are_refused_like_gemini(
    upstream: SimulatedUpstream, body: dict[str, Any], message: str
) -> None:
    error = refused(raw(upstream, STUDIO + ":generateContent", body))
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]
    stream_error = refused(raw(upstream, STUDIO + ":streamGenerateContent?alt=sse", body))
    assert stream_error == error


def test_refusals_reach_the_sdk_and_vertex_differs(upstream: SimulatedUpstream) -> None:
    contents: Any = [{"role": "assistant", "parts": [{"text": "hi"}]}]
    with pytest.raises(errors.ClientError) as caught:
        studio(upstream).models.generate_content(model=MODEL, contents=contents)
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "Please use a valid role: user, model."
    # Vertex reads web and gs:// URIs that AI Studio refuses, and knows `labels`
    web = {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/a.png"}}
    body = {"contents": [{"parts": [{"text": "see"}, web]}], "labels": {"team": "a"}}
    assert refused(raw(upstream, STUDIO + ":generateContent", body))["message"].startswith(
        'Invalid JSON payload received. Unknown name "labels"'
    )
    assert raw(upstream, VERTEX + ":generateContent", body).status_code == 200
    del body["labels"]
    assert (
        "Unsupported file uri"
        in refused(raw(upstream, STUDIO + ":generateContent", body))["message"]
    )


def test_unknown_action_and_bad_json(upstream: SimulatedUpstream) -> None:
    error = refused(raw(upstream, STUDIO + ":predict", {"instances": []}), 404)
    assert error["status"] == "NOT_FOUND"
    broken = httpx.post(
        upstream.base_url + STUDIO + ":generateContent",
        content=b"{nope",
        headers={"x-goog-api-key": KEY},
        timeout=10,
    )
    assert refused(broken)["message"].startswith("Invalid JSON payload received.")


# --- keys and faults ----------------------------------------------------------------------------


def test_bad_key_is_refused_like_gemini(upstream: SimulatedUpstream) -> None:
    bad = genai.Client(api_key="nope", http_options=types.HttpOptions(base_url=upstream.base_url))
    with pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    body = caught.value.details
    validate_gemini_error(body)
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert body["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"

    assert refused(raw(upstream, STUDIO + ":generateContent", {"contents": HELLO}, {}), 403)
    assert refused(raw(upstream, STUDIO + ":countTokens?key=nope", {"contents": HELLO}, {}))
    with pytest.raises(errors.ClientError) as vertex_caught:
        vertex(upstream, token="expired").models.generate_content(model=MODEL, contents="hi")
    assert (vertex_caught.value.code, vertex_caught.value.status) == (401, "UNAUTHENTICATED")


def with_faults(faults: dict[str, Any]) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-simulate": orjson.dumps(faults).decode()})
    )


@pytest.mark.parametrize(
    ("status", "exception", "name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
        (504, errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_fault_status_has_gemini_shape(
    upstream: SimulatedUpstream, status: int, exception: type[errors.APIError], name: str
) -> None:
    config = with_faults({"status": status, "retry_after": 2})
    with pytest.raises(exception) as caught:
        studio(upstream).models.generate_content(model=MODEL, contents="hi", config=config)
    assert (caught.value.code, caught.value.status) == (status, name)
    assert caught.value.message == f"simulated {status} error"
    validate_gemini_error(caught.value.details)
    body = {"contents": HELLO, "simulate": {"status": status, "retry_after": 2}}
    reply = raw(upstream, STUDIO + ":streamGenerateContent?alt=sse", body)
    assert reply.headers["retry-after"] == "2"
    assert refused(reply, status)["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
    ]


def test_in_stream_error_is_raised_by_the_sdk(upstream: SimulatedUpstream) -> None:
    config = with_faults({"error_after": 3})
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in studio(upstream).models.generate_content_stream(
            model=MODEL, contents="hello there", config=config
        ):
            received.append(chunk.text)
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert caught.value.message == "simulated in-stream failure"
    assert len(received) == 3

    body = {"contents": HELLO, "simulate": {"error_after": 3}}
    sse = raw(upstream, STUDIO + ":streamGenerateContent?alt=sse", body)
    assert sse.content.endswith(b"data: " + STREAM_ERROR + b"\r\n\r\n")
    assert STREAM_ERROR == (
        b'{"error":{"code":503,"message":"simulated in-stream failure","status":"UNAVAILABLE"}}'
    )
    chunks = validate_gemini_stream(sse.content)
    assert len(chunks) == 4 and "error" in chunks[-1]
    array = raw(upstream, STUDIO + ":streamGenerateContent", body)
    assert validate_gemini_stream(array.content) == chunks
    body["simulate"] = {"error_after": 0}
    first = raw(upstream, STUDIO + ":streamGenerateContent", body)
    assert validate_gemini_stream(first.content) == [orjson.loads(STREAM_ERROR)]


def test_cut_and_malformed(upstream: SimulatedUpstream) -> None:
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            upstream.base_url + STUDIO + ":streamGenerateContent?alt=sse",
            json={"contents": HELLO, "simulate": {"cut_after": 4}},
            headers={"x-goog-api-key": KEY},
        ) as reply,
    ):
        for chunk in reply.iter_raw():
            received += chunk
    assert received.count(b"\r\n\r\n") == 4
    broken = raw(
        upstream, STUDIO + ":generateContent", {"contents": HELLO, "simulate": {"malformed": True}}
    )
    assert broken.status_code == 200 and broken.content == b"{this is not json"


def test_openai_paths_are_unchanged(upstream: SimulatedUpstream) -> None:
    reply = httpx.post(
        upstream.base_url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"
    missing = httpx.post(
        upstream.base_url + "/v1/models", json={}, headers={"authorization": f"Bearer {KEY}"}
    )
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


# --- the contract checks can fail ---------------------------------------------------------------


def sse(chunks: list[Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)


def test_contracts_reject_broken_payloads(upstream: SimulatedUpstream) -> None:
    good = generate(upstream, {"contents": HELLO, "tools": TOOLS})
    broken_responses = [
        ({**good, "candidates": [{"finishReason": "DONE"}]}, "Invalid enum value DONE"),
        ({**good, "usage": {}}, 'no field named "usage"'),
        ({**good, "modelVersion": 3}, "modelVersion"),
        (
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [{"functionCall": {"name": "f"}, "thoughtSignature": "x!"}]
                        }
                    }
                ]
            },
            "thoughtSignature",
        ),
        ([good], "expected a JSON object"),
    ]
    for body, why in broken_responses:
        with pytest.raises(AssertionError, match=why):
            validate_gemini_response(body)

    broken_requests = [
        ({"contents": HELLO, "generationConfig": {"temperature": "hot"}}, "temperature"),
        (
            {
                "contents": HELLO,
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {"type": "object", "additionalProperties": False},
                            }
                        ]
                    }
                ],
            },
            "additionalProperties",
        ),
        (
            {"contents": HELLO, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "SOMETIMES",
        ),
        (
            {"contents": HELLO, "generationConfig": {"thinkingConfig": {"thinkingLevel": "HUGE"}}},
            "thinkingLevel",
        ),
        ({"contents": HELLO, "serviceTier": 3}, "serviceTier"),
        ({"contents": []}, "non-empty"),
    ]
    for body, why in broken_requests:
        with pytest.raises(AssertionError, match=why):
            validate_gemini_request(body)

    with pytest.raises(AssertionError, match="totalTokens"):
        validate_gemini_count_tokens({"contents": HELLO}, {"tokens": 3})
    with pytest.raises(AssertionError, match="totalTokens is missing"):
        validate_gemini_count_tokens({"contents": HELLO}, {})
    with pytest.raises(AssertionError, match="1 embeddings for 2"):
        validate_gemini_embed(
            {"requests": [{"content": {"parts": [{"text": t}]}} for t in "ab"]},
            {"embeddings": [{"values": [0.1]}]},
            batch=True,
        )
    with pytest.raises(AssertionError, match="2 values, outputDimensionality is 3"):
        validate_gemini_embed(
            {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3},
            {"embedding": {"values": [0.1, 0.2]}},
        )
    with pytest.raises(AssertionError, match="EmbedContentResponse"):
        validate_gemini_embed({"content": {"parts": [{"text": "a"}]}}, {"embeddings": []})
    broken_errors = [
        ({"error": {"code": 400, "message": "x", "status": "BAD"}}, "not a google.rpc.Code"),
        ({"error": {"code": 429, "message": "x", "status": "INTERNAL"}}, "goes with HTTP 500"),
        ({"error": {"code": "400", "message": "x", "status": "INVALID_ARGUMENT"}}, "integer"),
        ({"error": {"message": "x", "type": "invalid_request_error"}}, "unknown fields"),
        ({"type": "error", "error": {}}, "expected"),
    ]
    for body, why in broken_errors:
        with pytest.raises(AssertionError, match=why):
            validate_gemini_error(body)
    validate_gemini_error([{"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}])


def test_contracts_reject_broken_streams(upstream: SimulatedUpstream) -> None:
    chunks = stream(upstream, {"contents": HELLO})
    validate_gemini_stream(sse(chunks))
    error = orjson.loads(STREAM_ERROR)
    late = copy.deepcopy(chunks)
    late.append(late[1])
    cases = [
        (sse(chunks[:-1]), "without a finishReason for candidate"),
        (sse([]), "no chunks"),
        (sse(late), "content for candidate 0 after its finish"),
        (sse([*chunks[:2], error, chunks[-1]]), "chunks after an error"),
        (sse([*chunks[:2], {"error": {"code": 503}}]), "message must be a string"),
        (sse([{**chunks[0], "usage": {}}]), 'no field named "usage"'),
        (sse(chunks).replace(b"data: ", b"event: x\ndata: ", 1), "is not `data: ...`"),
        (sse(chunks).replace(b"data: ", b"data:", 1), "is not `data: ...`"),
        (sse(chunks)[:-1], "ends mid-event"),
        (sse(chunks) + b"data: {", "ends mid-line"),
        (b"data: {nope}\r\n\r\n", "not JSON"),
        (orjson.dumps(chunks)[:-1], "not valid JSON"),
    ]
    for body, why in cases:
        with pytest.raises(AssertionError, match=why):
            validate_gemini_stream(body)
