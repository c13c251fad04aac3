"""Embeddings between OpenAI's `/embeddings` and Gemini's `embedContent` /
`batchEmbedContents`, through one small canonical request and answer.

OpenAI → Gemini: one `batchEmbedContents` request per input string, in order (never N parts
of one content, which would give one vector for N inputs); `dimensions` →
`outputDimensionality`. Gemini reports no token usage: the answer's usage is zero. Token-id
inputs cannot be translated. Vectors go back in the encoding the caller asked for: OpenAI's
`base64` is little-endian float32, what the openai SDK asks for by default.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any

from crossway.dialects.common import expect, invalid, untranslatable
from crossway.dialects.gemini.requests import get
from crossway.dialects.openai.usage import usage_from
from crossway.ir import Usage


@dataclass(slots=True)
class EmbedRequest:
    inputs: list[str]
    dimensions: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # Gemini: taskType, title


@dataclass(slots=True)
class EmbedResponse:
    vectors: list[list[float]]
    usage: Usage | None = None


# --- OpenAI ---------------------------------------------------------------------------------


def openai_request(body: dict[str, Any]) -> EmbedRequest:
    raw = body.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        inputs = list(raw)
    elif isinstance(raw, list):
        raise untranslatable("input", "token-id input (arrays of integers)", "Gemini")
    else:
        raise invalid("input", "must be a string or an array of strings")
    dims = body.get("dimensions")
    return EmbedRequest(inputs, dims if isinstance(dims, int) else None)


def openai_body(req: EmbedRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": req.inputs, "encoding_format": "float"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return body


def openai_response(data: dict[str, Any]) -> EmbedResponse:
    rows = sorted(data.get("data") or [], key=lambda r: r.get("index", 0))
    vectors = []
    for row in rows:
        vec = row.get("embedding")
        if isinstance(vec, str):  # base64 float32, should an upstream send it unasked
            raw = base64.b64decode(vec)
            vec = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        vectors.append([float(v) for v in vec or []])
    return EmbedResponse(vectors, usage_from(data))


def openai_answer(resp: EmbedResponse, model: str, encoding: str) -> dict[str, Any]:
    def encode(vec: list[float]) -> Any:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        return vec

    usage = resp.usage or Usage()
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(resp.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }


# --- Gemini ---------------------------------------------------------------------------------


def _text(content: Any, where: str) -> str:
    content = expect(content, dict, where, "an object with parts")
    parts = get(content, "parts") or []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def gemini_request(body: dict[str, Any], batch: bool) -> EmbedRequest:
    if batch:
        requests = expect(get(body, "requests"), list, "requests", "an array")
        if not requests:
            raise invalid("requests", "must not be empty")
        inputs = [
            _text(get(r, "content"), f"requests[{i}].content") for i, r in enumerate(requests)
        ]
        first = requests[0] if isinstance(requests[0], dict) else {}
    else:
        inputs = [_text(get(body, "content"), "content")]
        first = body
    dims = get(first, "outputDimensionality")
    extra = {k: get(first, k) for k in ("taskType", "title") if get(first, k) is not None}
    return EmbedRequest(inputs, dims if isinstance(dims, int) else None, extra)


def gemini_body(req: EmbedRequest, model: str) -> dict[str, Any]:
    requests = []
    for text in req.inputs:
        one: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if req.dimensions is not None:
            one["outputDimensionality"] = req.dimensions
        one.update(req.extra)
        requests.append(one)
    return {"requests": requests}


def gemini_response(data: dict[str, Any]) -> EmbedResponse:
    rows = [data["embedding"]] if "embedding" in data else data.get("embeddings") or []
    return EmbedResponse([[float(v) for v in (r or {}).get("values") or []] for r in rows])


def gemini_answer(resp: EmbedResponse, batch: bool) -> dict[str, Any]:
    if batch:
        return {"embeddings": [{"values": v} for v in resp.vectors]}
    return {"embedding": {"values": resp.vectors[0] if resp.vectors else []}}
