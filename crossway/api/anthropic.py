"""The Anthropic-native front door: `/v1/messages` and `/v1/messages/count_tokens`.

Errors come back in Anthropic's shape with a `request-id` header, as the anthropic SDK
expects. The key may come as `x-api-key` or `Authorization: Bearer`; `anthropic-version` and
`anthropic-beta` are passed on to Anthropic upstreams (see the Anthropic provider).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson

from crossway.api.access import allow_route
from crossway.api.attempts import send_upstream
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.openai import fallback_models, parse_object
from crossway.api.relay import relay_json, usage_event
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects import anthropic as anthropic_dialect
from crossway.dialects.common import invalid
from crossway.dialects.registry import ANTHROPIC
from crossway.ir.chat import ChatRequest, Document, Image, Text, ToolCall, ToolResult

# count_tokens for a model no Anthropic upstream serves is estimated (see `estimate_tokens`)
CHARS_PER_TOKEN = 4
TOKENS_PER_MEDIA = 1600  # an image or a document page, roughly, when its size is unknown


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
    principal = req.principal
    if principal is not None and principal.key is not None:
        route = allow_route(principal, route)
    exchange = Exchange(ANTHROPIC, payload, False)
    native = [d for d in route.candidates if not exchange.translated(d)]
    if not native:
        count = estimate_tokens(exchange.request())
        await req.respond(200, orjson.dumps({"input_tokens": count}))
        return
    event = usage_event(req, "messages.count_tokens", route, stream=False)  # not recorded
    native_route = dataclasses.replace(route, candidates=native, fallbacks=[])
    sent = await send_upstream(req, native_route, "count_tokens", exchange, event)
    services.health.release(sent.dep)
    await req.respond(sent.resp.status, sent.body)


def estimate_tokens(request: ChatRequest) -> int:
    """About four characters a token, and a flat amount per image or document."""
    chars = sum(len(t.text) for t in request.system)
    media = 0
    for message in request.messages:
        for part in message.parts:
            items = part.content if isinstance(part, ToolResult) else [part]
            for item in items:
                if isinstance(item, Text):
                    chars += len(item.text)
                elif isinstance(item, Image | Document):
                    media += 1
                elif isinstance(item, ToolCall):
                    chars += len(item.name) + len(item.arguments)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "")
        chars += len(orjson.dumps(tool.parameters or {}))
    return max(1, math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MEDIA * media)


_RENDER = anthropic_dialect.error_body
_IDS = (b"request-id", b"x-request-id")

ROUTES = [
    Route(
        "POST", "/v1/messages", messages, metered="messages", render_error=_RENDER, id_headers=_IDS
    ),
    Route("POST", "/v1/messages/count_tokens", count_tokens, render_error=_RENDER, id_headers=_IDS),
]
