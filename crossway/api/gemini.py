"""The Gemini-native front door: `…/models/{model}:{action}` in every path style Google's SDK
uses (AI Studio `/v1beta/models/…` and `/v1/models/…`, Vertex
`/v1/projects/{p}/locations/{l}/publishers/google/models/…`, `/v1beta1/publishers/…`).

The key may come as `x-goog-api-key`, `?key=` or Bearer. Errors are Gemini's shape; an
upstream's 529 (overloaded) becomes 503 UNAVAILABLE, which google-genai knows to retry.
`streamGenerateContent` answers SSE with `alt=sse`, else one streamed JSON array.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from crossway.api.counting import count_tokens
from crossway.api.embeddings import EmbeddingExchange
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.openai import fallback_models, parse_object
from crossway.api.relay import relay_json
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects.common import invalid
from crossway.dialects.gemini import errors as gemini_errors
from crossway.dialects.gemini.requests import get
from crossway.dialects.registry import GEMINI
from crossway.errors import NotFound

ACTIONS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent",
           "batchEmbedContents")  # fmt: skip


def model_and_action(path: str) -> tuple[str, str]:
    _, sep, tail = path.rpartition("/models/")
    model, colon, action = tail.partition(":")
    if not sep or not colon or action not in ACTIONS or not model:
        raise NotFound(
            f"no such endpoint: POST {path}; Gemini paths end in /models/{{model}}:"
            + "|".join(ACTIONS),
            code="unknown_url",
            retryable=False,
        )
    return unquote(model), action


async def gemini_action(req: Request) -> None:
    model, action = model_and_action(req.path)
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    route = services.router.resolve(model, req.header(b"vendor"), fallbacks)
    if action in ("generateContent", "streamGenerateContent"):
        if not isinstance(get(payload, "contents"), list) or not get(payload, "contents"):
            raise invalid("contents", "is required and must be a non-empty array")
        if action == "generateContent":
            exchange = Exchange(GEMINI, payload, False, model=model)
            await relay_json(req, "generate_content", "chat", route, exchange)
            return
        sse = req.query.get("alt") == "sse"
        exchange = Exchange(GEMINI, payload, True, model=model, json_array=not sse)
        await relay_stream(req, "generate_content", route, exchange)
        return
    if action == "countTokens":
        await _count_tokens(req, model, payload, route)
        return
    batch = action == "batchEmbedContents"
    embed = EmbeddingExchange(GEMINI, payload, batch)
    await relay_json(req, "embeddings", "embed_batch" if batch else "embed_one", route, embed)


async def _count_tokens(req: Request, model: str, payload: dict[str, Any], route: Any) -> None:
    """A Gemini upstream counts; for any other model the count is estimated here."""
    inner = get(payload, "generateContentRequest")
    body = inner if isinstance(inner, dict) else payload
    exchange = Exchange(GEMINI, body, False, model=model)
    counting = Exchange(GEMINI, payload, False, model=model)
    await count_tokens(
        req, route, exchange, counting, "totalTokens", "generate_content.count_tokens"
    )


_GEMINI = {
    "render_error": gemini_errors.error_body,
    "map_status": gemini_errors.http_status,
    "query_key": True,
}
PREFIXES = ("/v1beta/models/", "/v1/models/", "/v1/projects/", "/v1beta1/projects/",
            "/v1beta1/publishers/", "/v1/publishers/", "/v1beta/projects/")  # fmt: skip
ROUTES = [
    Route("POST", prefix, gemini_action, metered="generate_content", **_GEMINI)  # type: ignore[arg-type]
    for prefix in PREFIXES
]
