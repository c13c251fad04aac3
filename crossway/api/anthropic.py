"""The Anthropic-native front door: `/v1/messages` and `/v1/messages/count_tokens`.

Errors come back in Anthropic's shape with a `request-id` header, as the anthropic SDK
expects. The key may come as `x-api-key` or `Authorization: Bearer`; `anthropic-version` and
`anthropic-beta` are passed on to Anthropic upstreams (see the Anthropic provider).
"""

from __future__ import annotations

from typing import Any

from crossway.api.counting import count_tokens as count_tokens_of
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.openai import fallback_models, parse_object
from crossway.api.relay import relay_json
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects import anthropic as anthropic_dialect
from crossway.dialects.common import invalid
from crossway.dialects.registry import ANTHROPIC


def _model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model", "is required and must be a non-empty string")
    return model


def _messages(payload: dict[str, Any]) -> None:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "is required and must be a non-empty array")


async def messages(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = _model(payload)
    _messages(payload)
    max_tokens = payload.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens", "is required and must be a positive integer")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "must be a boolean")
    route = services.router.resolve(model, req.header(b"vendor"), fallbacks)
    if stream:
        await relay_stream(req, "messages", route, Exchange(ANTHROPIC, payload, True))
    else:
        await relay_json(req, "messages", "chat", route, Exchange(ANTHROPIC, payload, False))


async def count_tokens(req: Request) -> None:
    """Anthropic upstreams count; for any other model the count is estimated here."""
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    model = _model(payload)
    _messages(payload)
    route = services.router.resolve(model, req.header(b"vendor"))
    exchange = Exchange(ANTHROPIC, payload, False)
    await count_tokens_of(req, route, exchange, exchange, "input_tokens", "messages.count_tokens")


_RENDER = anthropic_dialect.error_body
_IDS = (b"request-id", b"x-request-id")

ROUTES = [
    Route(
        "POST", "/v1/messages", messages, metered="messages", render_error=_RENDER, id_headers=_IDS
    ),
    Route("POST", "/v1/messages/count_tokens", count_tokens, render_error=_RENDER, id_headers=_IDS),
]
