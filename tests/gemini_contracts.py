"""Contract checks against Gemini's official schema (test support, not shipped).

    validate_gemini_request(body)                          # a generateContent body
    validate_gemini_response(body)                         # a GenerateContentResponse
    chunks = validate_gemini_stream(raw_bytes)             # SSE (CRLF or LF) or a JSON array
    validate_gemini_count_tokens(request, response)        # countTokens
    validate_gemini_embed(request, response, batch=False)  # embedContent / batchEmbedContents
    validate_gemini_error(body)                            # an error answer

Gemini publishes no OpenAPI spec. Its schema ships as the protobuf messages of
`google.ai.generativelanguage_v1beta` (PyPI `google-ai-generativelanguage`), and each payload
is read with `Message.from_json(text, ignore_unknown_fields=False)`: unknown fields, wrong types
and bad enum names fail. Proto JSON takes both the camelCase JSON names and the snake_case proto
names, as the API does. The REST body of generateContent has no `model` (it is in the path);
the message has it, optional. These are the AI Studio (Gemini API) v1beta messages: Vertex-only
fields (`labels`, `embedContentConfig`, ...) are not covered.

The installed proto lags the API in a few places. `PROTO_GAPS` lists each one with the check
that replaces the proto's; `_fill_gaps` applies them before parsing. Deliberately not gaps:
`thoughtSignature` is `bytes` (base64 in JSON, and "skip_thought_signature_validator" is valid
URL-safe base64), `parametersJsonSchema`/`responseJsonSchema` are `Value` (any JSON), and
`parameters`/`responseSchema` are the OpenAPI-subset `Schema` (JSON-Schema-only keywords such as
`additionalProperties` fail there, as they do on the API).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import orjson
from contracts import _short
from google.ai import generativelanguage_v1beta as glm
from google.protobuf.json_format import ParseError
from google.rpc import code_pb2

_Json = dict[str, Any]
# google.rpc.Code names, and the HTTP status each maps to (google/rpc/code.proto).
RPC_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
assert set(RPC_STATUS) == {v.name for v in code_pb2.Code.DESCRIPTOR.values}

_THINKING_LEVELS = {"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"}
_SERVICE_TIERS = {"unspecified", "standard", "flex", "priority"}
_MEDIA_LEVELS = {"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW"}
_MEDIA_LEVELS |= {"MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH", "MEDIA_RESOLUTION_ULTRA_HIGH"}


# --------------------------------------------------------------------------- proto gaps
def _get(obj: Any, camel: str) -> tuple[str, Any] | None:
    """(the key used, its value) for a field given in camelCase or snake_case."""
    if not isinstance(obj, dict):
        return None
    snake = re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), camel)
    for key in (camel, snake):
        if key in obj:
            return key, obj[key]
    return None


def _pop_checked(obj: Any, camel: str, ok: Callable[[Any], bool], why: str) -> None:
    """Remove a field the proto lacks, after checking its value the way the API would."""
    found = _get(obj, camel)
    if found is None:
        return
    key, value = found
    if not ok(value):
        raise AssertionError(f"{key}: {value!r} is not valid; {why}")
    del obj[key]


def _upper_types(schema: Any) -> None:
    """The API reads Schema.type case-insensitively ("object" as in its own REST examples)."""
    if isinstance(schema, list):
        for item in schema:
            _upper_types(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key == "type" and isinstance(value, str):
                schema[key] = value.upper()
            else:
                _upper_types(value)


def _parts_of(body: _Json) -> list[Any]:
    contents = (_get(body, "contents") or ("", []))[1]
    system = (_get(body, "systemInstruction") or ("", None))[1]
    out: list[Any] = []
    for content in [*(contents if isinstance(contents, list) else []), system]:
        parts = (_get(content, "parts") or ("", []))[1]
        out.extend(parts if isinstance(parts, list) else [])
    return out


def _media_resolution(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) - {"level", "numTokens", "num_tokens"}:
        return False
    tokens = value.get("numTokens", value.get("num_tokens", 0))
    level_ok = value.get("level") in _MEDIA_LEVELS | {None}
    return level_ok and isinstance(tokens, int) and not isinstance(tokens, bool)


# (where, what the API accepts, why the proto is not enough); every one is applied.
PROTO_GAPS: tuple[tuple[str, str, str], ...] = (
    (
        "GenerateContentRequest.serviceTier",
        f"one of {sorted(_SERVICE_TIERS)} (any case)",
        "google-genai 3.4 sends it top-level (models._GenerateContentConfig_to_mldev); "
        "the v1beta proto 0.12.1 has no service_tier",
    ),
    (
        "GenerationConfig.thinkingConfig.thinkingLevel",
        f"one of {sorted(_THINKING_LEVELS)}",
        "Gemini 3 takes thinkingLevel (google-genai types.ThinkingLevel); the proto's "
        "ThinkingConfig has only include_thoughts and thinking_budget",
    ),
    (
        "Part.mediaResolution",
        "{level: MEDIA_RESOLUTION_*, numTokens: int}",
        "per-part media resolution (google-genai types.PartMediaResolution, sent by "
        "_Part_to_mldev); missing from the proto's Part",
    ),
    (
        "Schema.type (FunctionDeclaration.parameters/response, GenerationConfig.responseSchema)",
        "the Type names in any case",
        "the proto enum is upper case; the API and its REST examples also take 'object', "
        "'string', ... (the simulated upstream lower-cases them too)",
    ),
)


def _fill_gaps(body: _Json) -> _Json:
    """A copy of a GenerateContentRequest body with PROTO_GAPS checked and taken out."""
    body = copy.deepcopy(body)
    _pop_checked(
        body,
        "serviceTier",
        lambda v: isinstance(v, str) and v.lower() in _SERVICE_TIERS,
        f"serviceTier must be one of {sorted(_SERVICE_TIERS)}",
    )
    config = (_get(body, "generationConfig") or ("", None))[1]
    thinking = (_get(config, "thinkingConfig") or ("", None))[1]
    _pop_checked(
        thinking,
        "thinkingLevel",
        lambda v: v in _THINKING_LEVELS,
        f"thinkingLevel must be one of {sorted(_THINKING_LEVELS)}",
    )
    for part in _parts_of(body):
        _pop_checked(part, "mediaResolution", _media_resolution, "see PROTO_GAPS")
    _upper_types((_get(config, "responseSchema") or ("", None))[1])
    tools = (_get(body, "tools") or ("", []))[1]
    for tool in tools if isinstance(tools, list) else []:
        for declaration in (_get(tool, "functionDeclarations") or ("", []))[1] or []:
            for name in ("parameters", "response"):
                _upper_types((_get(declaration, name) or ("", None))[1])
    return body


# --------------------------------------------------------------------------- parsing
def _parse(message: Any, payload: object, what: str) -> None:
    """Assert that payload is the proto JSON of `message`, read strictly."""
    name = f"google.ai.generativelanguage.v1beta.{message.__name__}"
    if not isinstance(payload, dict):
        raise AssertionError(
            f"{what}: expected a JSON object ({name}), got {_short(repr(payload))}"
        )
    try:
        message.from_json(orjson.dumps(payload).decode(), ignore_unknown_fields=False)
    except (ParseError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise AssertionError(f"{what} does not match {name}: {_short(detail)}") from None


def _without_simulate(body: object) -> object:
    """The simulated upstream's fault hook, which the real API would refuse, left out."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k != "simulate"}
    return body


def validate_gemini_request(body: object) -> None:
    """A generateContent / streamGenerateContent body (AI Studio v1beta)."""
    body = _without_simulate(body)
    if isinstance(body, dict):
        body = _fill_gaps(body)
        contents = (_get(body, "contents") or ("", None))[1]
        if not isinstance(contents, list) or not contents:
            raise AssertionError("GenerateContentRequest: contents must be a non-empty list")
    _parse(glm.GenerateContentRequest, body, "GenerateContentRequest")


def validate_gemini_response(body: object) -> None:
    _parse(glm.GenerateContentResponse, body, "GenerateContentResponse")


def validate_gemini_error(body: object) -> None:
    """`{"error": {"code": int, "message": str, "status": <google.rpc.Code name>,
    "details"?: [{"@type": str, ...}]}}`, bare or in a one-element list (both are sent)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        raise AssertionError(
            f"Gemini error: expected {{'error': {{...}}}}, got {_short(repr(body))}"
        )
    error = body["error"]
    if extra := set(error) - {"code", "message", "status", "details"}:
        raise AssertionError(f"Gemini error: unknown fields {sorted(extra)}")
    code, status = error.get("code"), error.get("status")
    if not isinstance(code, int) or isinstance(code, bool):
        raise AssertionError(f"Gemini error: code must be an integer, got {code!r}")
    if not isinstance(error.get("message"), str):
        raise AssertionError(
            f"Gemini error: message must be a string, got {error.get('message')!r}"
        )
    if status not in RPC_STATUS:
        raise AssertionError(f"Gemini error: status {status!r} is not a google.rpc.Code name")
    if code in RPC_STATUS.values() and RPC_STATUS[status] != code:
        raise AssertionError(f"Gemini error: status {status} goes with HTTP {RPC_STATUS[status]}")
    details = error.get("details", [])
    if not isinstance(details, list) or not all(
        isinstance(d, dict) and isinstance(d.get("@type"), str) for d in details
    ):
        raise AssertionError("Gemini error: details must be a list of objects with an @type")


# --------------------------------------------------------------------------- streams
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _sse_data(text: str) -> list[str]:
    """The data of each SSE event. The google-genai SDK reads only `data: ` lines (it takes any
    other line for a bare JSON error), so any other field is refused; comments may stay."""
    lines = _LINE_BREAK.split(text)
    if lines.pop():
        raise AssertionError("SSE body ends mid-line; the last event must end with a blank line")
    events: list[str] = []
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif not line.startswith(":"):
            raise AssertionError(f"SSE line {_short(line, 80)!r} is not `data: ...`")
    if data:
        raise AssertionError("SSE body ends mid-event; the last event must end with a blank line")
    return events


def _stream_chunks(raw: bytes) -> list[Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"stream body is not UTF-8: {exc}") from None
    if text.lstrip().startswith("["):  # streamGenerateContent without alt=sse
        try:
            chunks = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"JSON-array stream is not valid JSON: {exc}") from None
        if not isinstance(chunks, list):
            raise AssertionError("JSON-array stream is not an array")
        return chunks
    out = []
    for number, data in enumerate(_sse_data(text), start=1):
        try:
            out.append(orjson.loads(data))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"SSE event #{number}: data is not JSON ({exc})") from None
    return out


def validate_gemini_stream(raw: bytes) -> list[dict[str, Any]]:
    """Check a streamGenerateContent body; return its chunks.

    The body is SSE (`data: <GenerateContentResponse>` events, CRLF or LF, no [DONE]) or one
    JSON array of chunks. Every chunk must be a valid GenerateContentResponse. An `{"error":...}`
    chunk may end the stream; otherwise every candidate must get its finishReason, after which
    it has no more content.
    """
    chunks = _stream_chunks(raw)
    if not chunks:
        raise AssertionError("the stream has no chunks")
    finished: set[int] = set()
    seen: set[int] = set()
    for number, chunk in enumerate(chunks, start=1):
        where = f"stream chunk #{number}"
        if isinstance(chunk, dict) and "error" in chunk:
            try:
                validate_gemini_error(chunk)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from None
            if number != len(chunks):
                raise AssertionError(f"{where}: chunks after an error chunk")
            return chunks
        _parse(glm.GenerateContentResponse, chunk, where)
        for candidate in chunk.get("candidates") or []:
            index = candidate.get("index", 0)
            if index in finished and (candidate.get("content") or {}).get("parts"):
                raise AssertionError(f"{where}: content for candidate {index} after its finish")
            seen.add(index)
            if candidate.get("finishReason"):
                finished.add(index)
    blocked = (chunks[-1].get("promptFeedback") or {}).get("blockReason")
    if not seen and not blocked:
        raise AssertionError("the stream has no candidates (and no promptFeedback.blockReason)")
    if unfinished := sorted(seen - finished):
        raise AssertionError(
            f"the stream ended without a finishReason for candidate(s) {unfinished}"
        )
    return chunks


# --------------------------------------------------------------------------- other calls
def validate_gemini_count_tokens(request: object, response: object) -> None:
    request = _without_simulate(request)
    if isinstance(request, dict) and (found := _get(request, "generateContentRequest")):
        key, inner = found
        request = {**request, key: _fill_gaps(inner) if isinstance(inner, dict) else inner}
    _parse(glm.CountTokensRequest, request, "CountTokensRequest")
    _parse(glm.CountTokensResponse, response, "CountTokensResponse")
    assert isinstance(response, dict)
    if not isinstance(response.get("totalTokens"), int):
        raise AssertionError("CountTokensResponse: totalTokens is missing")


def _values(embedding: Any, dims: Any, where: str) -> None:
    values = embedding.get("values") if isinstance(embedding, dict) else None
    if not values:
        raise AssertionError(f"{where}: the embedding has no values")
    if isinstance(dims, int) and len(values) != dims:
        raise AssertionError(f"{where}: {len(values)} values, outputDimensionality is {dims}")


def validate_gemini_embed(request: object, response: object, batch: bool = False) -> None:
    """embedContent (`batch=False`) or batchEmbedContents; one embedding per request, in the
    size each asked for."""
    request = _without_simulate(request)
    if not batch:
        _parse(glm.EmbedContentRequest, request, "EmbedContentRequest")
        _parse(glm.EmbedContentResponse, response, "EmbedContentResponse")
        assert isinstance(request, dict) and isinstance(response, dict)
        dims = (_get(request, "outputDimensionality") or ("", None))[1]
        _values(response.get("embedding"), dims, "EmbedContentResponse")
        return
    _parse(glm.BatchEmbedContentsRequest, request, "BatchEmbedContentsRequest")
    _parse(glm.BatchEmbedContentsResponse, response, "BatchEmbedContentsResponse")
    assert isinstance(request, dict) and isinstance(response, dict)
    asked, got = request.get("requests") or [], response.get("embeddings") or []
    if len(asked) != len(got):
        raise AssertionError(f"BatchEmbedContentsResponse: {len(got)} embeddings for {len(asked)}")
    for i, (one, embedding) in enumerate(zip(asked, got, strict=True)):
        dims = (_get(one, "outputDimensionality") or ("", None))[1]
        _values(embedding, dims, f"BatchEmbedContentsResponse.embeddings[{i}]")
