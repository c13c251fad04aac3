"""Tests for tests/contracts.py: real-shaped OpenAI payloads pass, broken ones fail."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

try:  # pytest puts tests/ itself on sys.path while it has no __init__.py
    import contracts
except ModuleNotFoundError:  # tests/ turned into a package
    from tests import contracts  # type: ignore[no-redef, unused-ignore]

validate_openai = contracts.validate_openai
validate_sse_chat_stream = contracts.validate_sse_chat_stream

# --------------------------------------------------------------------------- fixtures (real shapes)
CHAT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp_c":18}'},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_completion_tokens": 256,
    "seed": 42,
    "stream": True,
    "stream_options": {"include_usage": True},
}

USAGE: dict[str, Any] = {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

CHAT_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-AB12cd34",
    "object": "chat.completion",
    "created": 1727346168,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I help?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
    "service_tier": "default",
    "system_fingerprint": "fp_50cad350e4",
}

CHAT_RESPONSE_TOOL_CALLS: dict[str, Any] = {
    **CHAT_RESPONSE,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}

_CHUNK_HEAD: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1727346168,
    "model": "gpt-4o-2024-08-06",
    "service_tier": "default",
    "system_fingerprint": "fp_1",
}


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {**_CHUNK_HEAD, "choices": [choice], "usage": None, "obfuscation": "x1Y2"}


STREAM_CHUNKS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Let me"}),
    _chunk({"content": " check."}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    _chunk({}, finish_reason="tool_calls"),
    {**_CHUNK_HEAD, "choices": [], "usage": USAGE, "obfuscation": "Zz"},
]

ERROR_BODY: dict[str, Any] = {
    "error": {
        "message": "The model `gpt-5-turbo` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
}

EMBEDDINGS_RESPONSE: dict[str, Any] = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [-0.0069, -0.0053, 0.0145]},
        {"object": "embedding", "index": 1, "embedding": [0.0112, -0.0201, 0.0007]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}

MODELS_RESPONSE: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {
            "id": "ft:gpt-4o-mini-2024-07-18:acme::9abcDEF1",
            "object": "model",
            "created": 1727346168,
            "owned_by": "acme-org",
        },
    ],
}


def sse(*events: object, done: bool = True, newline: str = "\n") -> bytes:
    """Serialise chunks the way OpenAI does: `data: <json>` + blank line, then [DONE]."""
    parts = [f"data: {orjson.dumps(e).decode()}{newline}{newline}" for e in events]
    if done:
        parts.append(f"data: [DONE]{newline}{newline}")
    return "".join(parts).encode()


def assert_fails(schema: str, payload: object, *fragments: str) -> str:
    with pytest.raises(AssertionError) as info:
        validate_openai(schema, payload)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- valid payloads
@pytest.mark.parametrize(
    ("schema", "payload"),
    [
        ("CreateChatCompletionRequest", CHAT_REQUEST),
        (
            "CreateChatCompletionRequest",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("CreateChatCompletionResponse", CHAT_RESPONSE),
        ("CreateChatCompletionResponse", CHAT_RESPONSE_TOOL_CALLS),
        ("CreateEmbeddingRequest", {"model": "text-embedding-3-small", "input": ["a", "b"]}),
        ("CreateEmbeddingResponse", EMBEDDINGS_RESPONSE),
        ("ListModelsResponse", MODELS_RESPONSE),
        ("Model", MODELS_RESPONSE["data"][0]),
        ("ErrorResponse", ERROR_BODY),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_real_shaped_payloads_pass(schema: str, payload: object) -> None:
    validate_openai(schema, payload)


def test_real_shaped_stream_passes() -> None:
    raw = sse(*STREAM_CHUNKS)
    assert validate_sse_chat_stream(raw) == STREAM_CHUNKS


def test_stream_parsing_follows_sse_rules() -> None:
    # CRLF line ends, a keep-alive comment, an `id:` field and a payload split over two
    # `data:` lines (joined with "\n", which is JSON whitespace) are all legal SSE, and an
    # event whose data is empty is not dispatched at all.
    first, *rest = STREAM_CHUNKS
    text = sse(*rest, newline="\r\n").decode()
    head = orjson.dumps(first).decode().replace(',"model"', ',\r\ndata:"model"')
    raw = f": keep-alive\r\n\r\nid: 1\r\ndata: {head}\r\n\r\ndata:\r\n\r\n{text}".encode()
    assert validate_sse_chat_stream(raw) == STREAM_CHUNKS


def test_stream_error_chunk_is_checked_as_error_response() -> None:
    assert validate_sse_chat_stream(sse(STREAM_CHUNKS[0], ERROR_BODY))[1] == ERROR_BODY
    broken = {"error": {"type": "server_error", "param": None, "code": None}}
    with pytest.raises(AssertionError, match=r"(?s)SSE event #2.*ErrorResponse.*'message'"):
        validate_sse_chat_stream(sse(STREAM_CHUNKS[0], broken))


# --------------------------------------------------------------------------- broken payloads
def test_missing_choices_fails() -> None:
    body = {k: v for k, v in CHAT_RESPONSE.items() if k != "choices"}
    assert_fails("CreateChatCompletionResponse", body, "at $: 'choices' is a required property")


def test_wrong_type_for_created_fails_with_json_path() -> None:
    message = assert_fails(
        "CreateChatCompletionResponse",
        {**CHAT_RESPONSE, "created": "1727346168"},
        "CreateChatCompletionResponse",
        "at $.created: '1727346168' is not of type 'integer'",
    )
    assert "1 error(s)" in message


def test_nested_error_names_the_closest_branch() -> None:
    body = copy.deepcopy(CHAT_RESPONSE_TOOL_CALLS)
    del body["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
    assert_fails(
        "CreateChatCompletionResponse",
        body,
        "at $.choices[0].message.tool_calls[0]:",
        "$.choices[0].message.tool_calls[0].function: 'name' is a required property",
    )


def test_error_body_missing_message_fails() -> None:
    body = {"error": {k: v for k, v in ERROR_BODY["error"].items() if k != "message"}}
    assert_fails("ErrorResponse", body, "at $.error: 'message' is a required property")


def test_chat_request_without_messages_fails() -> None:
    request = {k: v for k, v in CHAT_REQUEST.items() if k != "messages"}
    assert_fails("CreateChatCompletionRequest", request, "'messages' is a required property")


def test_chat_request_with_unknown_role_fails() -> None:
    request = {"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]}
    assert_fails("CreateChatCompletionRequest", request, "at $.messages[0]:")


def test_stream_without_done_fails() -> None:
    with pytest.raises(AssertionError, match=r"must end with 'data: \[DONE\]'"):
        validate_sse_chat_stream(sse(*STREAM_CHUNKS, done=False))
    with pytest.raises(AssertionError, match="no events"):
        validate_sse_chat_stream(b": only a comment\n\n")


def test_stream_with_events_after_done_fails() -> None:
    raw = sse(STREAM_CHUNKS[0]) + sse(STREAM_CHUNKS[1])
    with pytest.raises(AssertionError, match=r"SSE event #2: \[DONE\] is followed by more events"):
        validate_sse_chat_stream(raw)


def test_stream_with_unterminated_last_event_fails() -> None:
    with pytest.raises(AssertionError, match="ends mid-line"):
        validate_sse_chat_stream(sse(STREAM_CHUNKS[0]) + b"data: [DONE]")
    with pytest.raises(AssertionError, match="ends mid-event"):
        validate_sse_chat_stream(sse(STREAM_CHUNKS[0]) + b"data: [DONE]\n")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"data: {not json}\n\n", "SSE event #1: data is not JSON"),
        (b"data: [1, 2]\n\n", "SSE event #1: data is not a JSON object"),
        (b"data: \xff\n\n", "not UTF-8"),
    ],
)
def test_stream_with_malformed_event_fails(data: bytes, expected: str) -> None:
    with pytest.raises(AssertionError, match=expected):
        validate_sse_chat_stream(data + b"data: [DONE]\n\n")


def test_stream_with_invalid_chunk_fails_naming_the_event() -> None:
    bad = _chunk({"content": "x"}, finish_reason="done")
    with pytest.raises(AssertionError) as info:
        validate_sse_chat_stream(sse(STREAM_CHUNKS[0], bad))
    message = str(info.value)
    assert message.startswith("SSE event #2: ")
    assert "CreateChatCompletionStreamResponse" in message
    assert "$.choices[0].finish_reason: 'done' is not one of" in message


def test_chunk_missing_finish_reason_fails() -> None:
    chunk = copy.deepcopy(STREAM_CHUNKS[1])
    del chunk["choices"][0]["finish_reason"]
    assert_fails(
        "CreateChatCompletionStreamResponse", chunk, "'finish_reason' is a required property"
    )


def test_unknown_schema_name_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="CreateChatCompletionResponse"):
        validate_openai("CreateChatCompletionResponce", {})


# --------------------------------------------------------------------------- spec normalisation
def test_openapi_nullable_is_honoured() -> None:
    # nullable + enum (finish_reason), nullable + $ref (usage), nullable object (logprobs)
    chunk = _chunk({"content": "x"})
    assert chunk["usage"] is None and chunk["choices"][0]["finish_reason"] is None
    validate_openai("CreateChatCompletionStreamResponse", chunk)
    # ... but null is still rejected where the spec does not allow it
    assert_fails("CreateChatCompletionStreamResponse", {**chunk, "model": None}, "at $.model:")


def test_normalize_rewrites_openapi_30_leftovers() -> None:
    raw = {
        "components": {
            "schemas": {
                "Reason": {"type": "string", "enum": ["stop"], "nullable": True},
                "Usage": {"$ref": "#/components/schemas/Reason", "nullable": True},
                "Wrapped": {"allOf": [{"$ref": "#/components/schemas/Reason"}, {"nullable": True}]},
                "Strict": {"type": "integer", "nullable": False},
                "Rate": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "Tree": {
                    "$recursiveAnchor": True,
                    "properties": {"kids": {"items": {"$recursiveRef": "#"}}},
                },
                "Named": {"properties": {"default": {"type": "string", "nullable": True}}},
                "Example": {"type": "string", "example": {"nullable": True}},
            }
        }
    }
    schemas = contracts._normalize_spec(raw)["components"]["schemas"]
    assert schemas["Reason"] == {"type": ["string", "null"], "enum": ["stop", None]}
    null_or_reason = [{"type": "null"}, {"$ref": "#/components/schemas/Reason"}]
    assert schemas["Usage"] == {"anyOf": null_or_reason}
    assert schemas["Wrapped"] == {"anyOf": [{"type": "null"}, {"allOf": null_or_reason[1:]}]}
    assert schemas["Strict"] == {"type": "integer"}
    assert schemas["Rate"] == {"type": "number", "exclusiveMinimum": 0}
    kids = schemas["Tree"]["properties"]["kids"]["items"]
    assert kids == {"$ref": "#/components/schemas/Tree"}
    assert "$recursiveAnchor" not in schemas["Tree"]
    assert schemas["Named"]["properties"]["default"]["type"] == ["string", "null"]
    assert schemas["Example"]["example"] == {"nullable": True}  # data is left alone
    rate = Draft202012Validator(schemas["Rate"])
    assert rate.is_valid(0.5) and not rate.is_valid(0)


def test_normalize_fixes_real_spec_leftovers() -> None:
    # exclusiveMinimum: true (OpenAPI 3.0) would otherwise mean "> 1" in 2020-12.
    validate_openai("FineTuneDPOHyperparameters", {"beta": 0.5})
    assert_fails("FineTuneDPOHyperparameters", {"beta": 0})
    # $recursiveRef (2019-09) would otherwise match anything and break the oneOf.
    leaf = {"type": "eq", "key": "author", "value": "ada"}
    validate_openai("CompoundFilter", {"type": "and", "filters": [leaf]})
    validate_openai(
        "CompoundFilter", {"type": "or", "filters": [{"type": "and", "filters": [leaf]}]}
    )
    nested_bad = {"type": "and", "filters": [{"type": "or", "filters": [{"type": "eq"}]}]}
    assert_fails("CompoundFilter", nested_bad, "$.filters[0]")
    # 64-bit bounds survive as comparable numbers
    validate_openai("CreateChatCompletionRequest", {**CHAT_REQUEST, "seed": -(2**63)})


# --------------------------------------------------------------------------- spec patches
def test_patches_accept_real_world_shapes_only() -> None:
    base64_item = {"object": "embedding", "index": 0, "embedding": "nMcovm6gOb7ldwO/AESlvg=="}
    validate_openai("CreateEmbeddingResponse", {**EMBEDDINGS_RESPONSE, "data": [base64_item]})
    assert_fails("Embedding", {**base64_item, "embedding": 0.5}, "at $.embedding:")
    validate_openai("CreateChatCompletionResponse", {**CHAT_RESPONSE, "system_fingerprint": None})
    validate_openai(
        "CreateChatCompletionStreamResponse", {**STREAM_CHUNKS[0], "system_fingerprint": None}
    )
    assert_fails("CreateChatCompletionResponse", {**CHAT_RESPONSE, "system_fingerprint": 7})


def test_every_patch_is_explained() -> None:
    spec = contracts._spec()
    for pointer, _transform, why in contracts.SPEC_PATCHES:
        assert len(why) > 20, pointer
        node: Any = spec
        for part in pointer.strip("/").split("/"):
            node = node[part]
        assert "anyOf" in node, pointer


# --------------------------------------------------------------------------- operations
@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/chat/completions", "CreateChatCompletionRequest"),
        ("post", "/chat/completions", "CreateChatCompletionRequest"),
        ("POST", "/v1/embeddings", "CreateEmbeddingRequest"),
        ("POST", "/v1/completions?foo=1", "CreateCompletionRequest"),
        ("POST", "v1/embeddings/", "CreateEmbeddingRequest"),
        ("POST", "http://127.0.0.1:8080/v1/chat/completions?x=1", "CreateChatCompletionRequest"),
    ],
)
def test_request_schema_lookup(method: str, path: str, expected: str) -> None:
    assert contracts.openai_request_schema(method, path) == expected


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("POST", "/v1/chat/completions", 200, "CreateChatCompletionResponse"),
        ("POST", "/v1/chat/completions", 429, "ErrorResponse"),  # via components/responses
        ("POST", "/v1/chat/completions", 400, "ErrorResponse"),  # undeclared: fallback
        ("POST", "/v1/chat/completions", 503, "ErrorResponse"),
        ("GET", "/v1/chat/completions", 200, "ChatCompletionList"),  # literal beats {param}
        ("GET", "/v1/chat/completions/chatcmpl-1", 200, "CreateChatCompletionResponse"),
        ("POST", "/v1/embeddings", 200, "CreateEmbeddingResponse"),
        ("GET", "/v1/models", 200, "ListModelsResponse"),
        ("GET", "/v1/models/", 200, "ListModelsResponse"),
        ("GET", "/v1/models/gpt-4o", 200, "Model"),
        ("GET", "/models/ft:gpt-4o-mini-2024-07-18:acme::9abcDEF1", 200, "Model"),
        ("GET", "/v1/models/gpt-4o", 404, "ErrorResponse"),
        ("DELETE", "/v1/responses/resp_1", 404, "Error"),  # declared by the spec as-is
    ],
)
def test_response_schema_lookup(method: str, path: str, status: int, expected: str) -> None:
    assert contracts.openai_response_schema(method, path, status) == expected


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: contracts.openai_request_schema("POST", "/v1/nope"), "no OpenAI operation"),
        (lambda: contracts.openai_request_schema("PUT", "/v1/models"), "no PUT operation"),
        (lambda: contracts.openai_request_schema("GET", "/v1/models"), "no application/json"),
        (lambda: contracts.openai_response_schema("GET", "/v1/models", 201), "no application/json"),
        (lambda: contracts.openai_request_schema("GET", "/v1/models/a/b"), "no OpenAI operation"),
    ],
)
def test_unknown_operations_are_lookup_errors(call: Any, expected: str) -> None:
    with pytest.raises(LookupError, match=expected):
        call()


# --------------------------------------------------------------------------- loading and cache
MINI_SPEC = """\
openapi: 3.1.0
info: {title: mini, version: 2024-10-01}
paths: {}
components:
  schemas:
    Seed: {type: integer, nullable: true, minimum: -9223372036854776000}
"""


def test_cache_is_keyed_by_spec_content(tmp_path: Path) -> None:
    spec_file, cache_dir = tmp_path / "openai.openapi.yaml", tmp_path / "cache"
    spec_file.write_text(MINI_SPEC)
    first = contracts._read_spec(spec_file, cache_dir)
    assert first["info"]["version"] == "2024-10-01"  # YAML date made JSON-safe
    assert first["components"]["schemas"]["Seed"]["type"] == ["integer", "null"]
    (cached,) = cache_dir.glob("openai-*.json")
    assert orjson.loads(cached.read_bytes()) == first
    cached.write_bytes(b'{"from": "cache"}')  # a second load must come from the cache
    assert contracts._read_spec(spec_file, cache_dir) == {"from": "cache"}
    spec_file.write_text(MINI_SPEC.replace("mini", "changed"))  # new content: new key
    assert contracts._read_spec(spec_file, cache_dir)["info"]["title"] == "changed"
    assert len(list(cache_dir.glob("openai-*.json"))) == 2


def test_unusable_cache_dir_still_loads(tmp_path: Path) -> None:
    spec_file = tmp_path / "openai.openapi.yaml"
    spec_file.write_text(MINI_SPEC)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert contracts._read_spec(spec_file, blocker)["info"]["title"] == "mini"


def test_missing_spec_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contracts.SPECS_DIR_ENV, str(tmp_path))
    assert contracts.spec_path() == tmp_path / "openai.openapi.yaml"
    with pytest.raises(contracts.SpecNotFoundError, match="CROSSWAY_SPECS_DIR"):
        contracts._read_spec(contracts.spec_path(), tmp_path / "cache")


def test_missing_spec_fails_validation_in_a_fresh_process(tmp_path: Path) -> None:
    code = "import contracts; contracts.validate_openai('Model', {})"
    env = {**os.environ, contracts.SPECS_DIR_ENV: str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(contracts.__file__).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SpecNotFoundError" in result.stderr and str(tmp_path) in result.stderr
