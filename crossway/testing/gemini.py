"""Google's Gemini REST API for the simulated upstream: `/models/{model}:{action}`.

`SimulatedUpstream` hands over every request whose last path segment is `{model}:{action}`
after `/models/`: AI Studio (`/v1beta/models/m:generateContent`, `/v1/models/m:...`) and
Vertex (`/v1/projects/p/locations/l/publishers/google/models/m:...`,
`/v1beta1/publishers/google/models/m:...`). Actions: generateContent, streamGenerateContent,
countTokens, embedContent, batchEmbedContents; the model comes from the path. Field names are
read in camelCase or snake_case (as proto JSON is); unknown names and the turn, tool and file
rules the real API enforces are refused with 400 INVALID_ARGUMENT, and every error has Google's
shape `{"error":{"code","message","status"}}`. Answers are deterministic from the body. Streams
send `data: <chunk>\\r\\n\\r\\n` with `?alt=sse` (no [DONE]), else one streamed JSON array. Faults
work as for OpenAI (see `crossway.testing.faults`). Requests are read and checked in
`crossway.testing.gemini_requests`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from crossway.testing import gemini_requests as rq
from crossway.testing import replies
from crossway.testing.anthropic import Play, _chunked, _pieces
from crossway.testing.faults import Faults
from crossway.testing.media import PNG
from crossway.testing.server import Reply, Request

JSON = {"content-type": "application/json; charset=UTF-8"}
_PATH = re.compile(r"/models/([^/:]+):([A-Za-z]+)$")
_ACTIONS = {"generateContent", "streamGenerateContent", "countTokens", "embedContent"}
_ACTIONS |= {"batchEmbedContents", "predict"}
_ASPECTS = ("1:1", "3:4", "4:3", "9:16", "16:9")
_STREAM_ERROR = {"code": 503, "message": "simulated in-stream failure", "status": "UNAVAILABLE"}
STREAM_ERROR = orjson.dumps({"error": _STREAM_ERROR})
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
_STATUS |= {404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED"}
_STATUS |= {500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_RPC = "type.googleapis.com/google.rpc."


def handles(path: str) -> bool:
    return _PATH.search(path) is not None


def _vertex(path: str) -> bool:
    return "/publishers/" in path or "/projects/" in path


def credentials(request: Request) -> set[str]:
    """What a Gemini request offers as a key: `x-goog-api-key`, `?key=` or a Vertex bearer."""
    auth = request.headers.get("authorization", "")
    bearer = auth[7:] if auth.lower().startswith("bearer ") else ""
    return {request.headers.get("x-goog-api-key", ""), request.query.get("key", ""), bearer} - {""}


def error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Reply:
    """An error in Google's shape; the status name follows the HTTP status as google.rpc's."""
    body: dict[str, Any] = {"code": status, "message": message}
    body["status"] = _STATUS.get(status, "UNKNOWN")
    if details:
        body["details"] = details
    return Reply(status, {**JSON, **(headers or {})}, orjson.dumps({"error": body}))


def refuse(request: Request, status: int, message: str) -> Reply:
    """An error the upstream found before answering (method, JSON, key), as Google words it."""
    if status == 400:
        return error(400, "Invalid JSON payload received. Unexpected token.")
    if status != 401:
        return error(status, message)
    if request.headers.get("x-goog-api-key") or request.query.get("key"):
        # The real API answers a wrong key with 400, not 401.
        service = "aiplatform" if _vertex(request.path) else "generativelanguage"
        info: dict[str, Any] = {"@type": _RPC + "ErrorInfo", "reason": "API_KEY_INVALID"}
        info |= {"domain": "googleapis.com", "metadata": {"service": f"{service}.googleapis.com"}}
        return error(400, "API key not valid. Please pass a valid API key.", details=[info])
    if request.headers.get("authorization"):
        return error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
    return error(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def answer(request: Request, body: dict[str, Any], faults: Faults, play: Play) -> Reply:
    """Answer a Gemini call; hang and latency faults are already done."""
    found = _PATH.search(request.path)
    assert found is not None
    model, action = found.groups()
    if action not in _ACTIONS:
        return error(404, f"Method not found: models/{model}:{action}.")
    if faults.status:
        headers, details = {}, []
        if faults.retry_after is not None:
            headers["retry-after"] = str(faults.retry_after)
            details = [{"@type": _RPC + "RetryInfo", "retryDelay": f"{faults.retry_after:g}s"}]
        text = faults.message or f"simulated {faults.status} error"
        return error(faults.status, text, headers, details)
    if faults.malformed:
        return Reply(200, dict(JSON), b"{this is not json")
    if (action == "predict") != model.startswith("imagen"):  # Imagen answers predict only
        return error(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{action}. Call ListModels to see the list of available models and their "
            "supported methods.",
        )
    vertex = _vertex(request.path)
    try:
        if action == "predict":
            return _predict(body)
        if action == "countTokens":
            return _count(rq.normalize(body, "count", vertex))
        if action == "embedContent":
            one = _embedding(rq.normalize(body, "embed", vertex), "EmbedContentRequest")
            return Reply(200, dict(JSON), orjson.dumps({"embedding": one}))
        if action == "batchEmbedContents":
            return _batch(rq.normalize(body, "batch", vertex), model, vertex)
        req = rq.normalize(body, "request", vertex)
        rq.check_generate(req, model, vertex)
    except rq.Invalid as exc:
        return error(400, str(exc))
    rid = "sim" + replies.request_id(request.body)
    reply = _answer(req, model, rid, faults)
    if action == "generateContent":
        return Reply(200, dict(JSON), _chunks(req, model, rid, reply)[0])
    chunks = _chunks(req, model, rid, reply, streamed=True)
    if request.query.get("alt") == "sse":  # the real API ends SSE lines with CRLF
        events = [b"data: " + c + b"\r\n\r\n" for c in chunks]
        broken = b"data: " + STREAM_ERROR + b"\r\n\r\n"
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        return Reply(200, headers, stream=play(events, faults, broken))
    # Without alt=sse: one JSON array, written chunk by chunk.
    events = [(b",\r\n" if i else b"[") + c for i, c in enumerate(chunks)]
    events[-1] += b"]"
    broken = (b"[" if faults.error_after == 0 else b",\r\n") + STREAM_ERROR + b"]"
    return Reply(200, dict(JSON), stream=play(events, faults, broken))


# --- answering ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
    thought: str | None
    calls: list[dict[str, Any]]  # functionCall parts
    pieces: list[str]  # the text, one stream chunk each
    finish: str
    output: int  # candidatesTokenCount of one candidate
    thinking: int  # thoughtsTokenCount of one candidate


def _lower_types(schema: Any) -> Any:
    """An OpenAPI-style `parameters` schema with JSON Schema's lower-case type names."""
    if isinstance(schema, list):
        return [_lower_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)
        for k, v in schema.items()
    }


def _calls(req: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    """Call a function when some are declared, allowed, and the last turn is no answer."""
    declared = [
        fd for tool in req.get("tools") or [] for fd in tool.get("function_declarations") or []
    ]
    config = (req.get("tool_config") or {}).get("function_calling_config") or {}
    last = rq.get_parts(req["contents"][-1])
    if not declared or config.get("mode") == "NONE":
        return []
    if any(p.get("function_response") is not None for p in last):
        return []
    allowed = config.get("allowed_function_names")
    if config.get("mode") == "ANY" and allowed:
        declared = [fd for fd in declared if fd["name"] in allowed]
    if "[parallel]" not in rq.texts(last):
        declared = declared[:1]
    parts = []
    for i, fd in enumerate(declared):
        schema = fd.get("parameters_json_schema") or _lower_types(fd.get("parameters"))
        example = replies._example(schema)
        digest = hashlib.sha256(f"{rid}:call:{i}".encode()).digest()
        call = {"name": fd["name"], "args": example if isinstance(example, dict) else {}}
        # AI Studio sends no call id; the signature must come back with the call (Gemini 3)
        signature = base64.b64encode(b"sim" + digest).decode()
        parts.append({"functionCall": call, "thoughtSignature": signature})
    return parts


def _last_user(contents: list[dict[str, Any]]) -> dict[str, Any]:
    return next((c for c in reversed(contents) if c.get("role") != "model"), {})


def _reply_text(model: str, contents: list[dict[str, Any]]) -> str:
    """Worded like `replies.reply_words`, with Gemini's part kinds."""
    parts = rq.get_parts(_last_user(contents))
    answered = [
        p["function_response"].get("response")
        for p in parts
        if p.get("function_response") is not None
    ]
    if answered:
        said = orjson.dumps(answered[0] if len(answered) == 1 else answered).decode()
        message = {"role": "tool", "content": said}
    else:
        message = {"role": "user", "content": rq.texts(parts)}
    text = "".join(replies.reply_words(model, [message], None))
    kinds = (("inlineData", "inline_data"), ("fileData", "file_data"))
    counts = [(n, name) for name, field in kinds if (n := rq.media(parts, field))]
    if counts:
        text += f" (received: {', '.join(f'{n} {k}' for n, k in counts)})"
    return text


def _answer(req: dict[str, Any], model: str, rid: str, faults: Faults) -> _Answer:
    config = req.get("generation_config") or {}
    thought, thinking = None, 0
    if (config.get("thinking_config") or {}).get("include_thoughts") is True:
        said = " ".join(rq.texts(rq.get_parts(_last_user(req["contents"]))).split())[:40]
        thought = f"{replies.SIMULATED} Thinking it over: {said}".rstrip()
        thinking = len(thought) // 4 + 8
    if calls := _calls(req, rid):
        output = sum(len(orjson.dumps(c["functionCall"]["args"])) // 4 + 5 for c in calls)
        return _Answer(thought, calls, [], "STOP", output, thinking)  # STOP, as the real API
    text, finish = _reply_text(model, req["contents"]), "STOP"
    asked = config.get("stop_sequences")
    listed = asked if isinstance(asked, list) else []
    stops = [s for s in listed if isinstance(s, str) and s and s in text]
    if stops:
        text = text[: min(text.find(s) for s in stops)]
    pieces = _pieces(text) if text else []
    limit = config.get("max_output_tokens")
    if rq.is_int(limit) and 0 < limit < len(pieces):
        pieces, finish = pieces[:limit], "MAX_TOKENS"
    if pieces:
        pieces = _chunked(pieces, faults.chunks)
    return _Answer(thought, [], pieces, finish, max(len(pieces), 1), thinking)


def _chunks(
    req: dict[str, Any], model: str, rid: str, reply: _Answer, streamed: bool = False
) -> list[bytes]:
    """The answer as one GenerateContentResponse, or as the chunks of its stream."""
    prompt = rq.prompt_tokens(req)
    count = (req.get("generation_config") or {}).get("candidate_count")
    n = count if rq.is_int(count) and count > 1 else 1
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": reply.output * n}
    usage["totalTokenCount"] = prompt + (reply.output + reply.thinking) * n
    if reply.thought is not None:
        usage["thoughtsTokenCount"] = reply.thinking * n
    thought = [] if reply.thought is None else [{"text": reply.thought, "thought": True}]
    modalities = (req.get("generation_config") or {}).get("response_modalities") or []
    image = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}]
    if "IMAGE" not in [str(m).upper() for m in modalities]:
        image = []  # an image only for a caller that asked for one

    def chunk(parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
        ending = {"finishReason": finish} if finish else {}
        content = {"role": "model", "parts": parts}
        candidates = [{"content": content, **ending, "index": i} for i in range(n)]
        used = usage if finish else {"promptTokenCount": prompt, "totalTokenCount": prompt}
        head = {"modelVersion": model, "responseId": rid}
        return orjson.dumps({"candidates": candidates, "usageMetadata": used, **head})

    if not streamed:
        text = [{"text": "".join(reply.pieces)}] if reply.pieces else []
        return [chunk([*thought, *reply.calls, *text, *image], reply.finish)]
    chunks = [chunk(thought)] if thought else []
    chunks += [chunk(reply.calls)] if reply.calls else []  # a call arrives whole
    chunks += [chunk([{"text": p}]) for p in reply.pieces]
    chunks += [chunk(image)] if image else []
    return [*chunks, chunk([{"text": ""}], reply.finish)]


def _count(req: dict[str, Any]) -> Reply:
    inner = req.get("generate_content_request")
    if inner is not None:
        where = "CountTokensRequest.generate_content_request"
        rq.check_contents(inner.get("contents") or [], where)
    else:
        rq.check_contents(req.get("contents") or [], "CountTokensRequest")
    total = rq.prompt_tokens(inner if inner is not None else req)
    return Reply(200, dict(JSON), orjson.dumps({"totalTokens": total}))


def _embedding(req: dict[str, Any], at: str) -> dict[str, Any]:
    text, size = rq.embed_request(req, at)
    return {"values": replies.embedding(text, size)}


def _batch(req: dict[str, Any], model: str, vertex: bool) -> Reply:
    batch = req.get("requests") or []
    if not batch:
        raise rq.Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    out = []
    for i, one in enumerate(batch):
        at, name = f"BatchEmbedContentsRequest.requests[{i}]", one.get("model")
        # Vertex requests name no model; AI Studio's must name the one in the path.
        if name != f"models/{model}" and not (vertex and name is None):
            raise rq.Invalid(
                f"* {at}.model: the model of each request must be models/{model}, the model "
                f"of the batch, not {name!r}."
            )
        out.append(_embedding(one, at))
    return Reply(200, dict(JSON), orjson.dumps({"embeddings": out}))


def _predict(body: dict[str, Any]) -> Reply:
    """Imagen: one PNG per sample; a prompt that says "forbidden" has every image withheld."""
    instances = body.get("instances")
    prompt = instances[0].get("prompt") if isinstance(instances, list) and instances else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise rq.Invalid("* PredictRequest.instances[0].prompt: a prompt is required.")
    parameters = body.get("parameters") or {}
    count = parameters.get("sampleCount", 4)  # Imagen's default is four
    if not rq.is_int(count) or not 1 <= count <= 4:
        raise rq.Invalid("Number of images to generate must be in the range [1, 4].")
    aspect = parameters.get("aspectRatio", "1:1")
    if aspect not in _ASPECTS:
        raise rq.Invalid(f"Aspect ratio {aspect!r} is not supported. Use one of {_ASPECTS}.")
    if "forbidden" in prompt.lower():
        reason = "Your current safety filter threshold filtered out the generated image."
        withheld = [{"raiFilteredReason": reason}] if parameters.get("includeRaiReason") else []
        return Reply(200, dict(JSON), orjson.dumps({"predictions": withheld}))
    image = {"mimeType": "image/png", "bytesBase64Encoded": base64.b64encode(PNG).decode()}
    return Reply(200, dict(JSON), orjson.dumps({"predictions": [image] * count}))
