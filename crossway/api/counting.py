"""Counting a request's input tokens: asked of an upstream that speaks the caller's format
and can count (Anthropic's count_tokens, Gemini's countTokens), else estimated here."""

from __future__ import annotations

import dataclasses
import math

import orjson

from crossway.api.access import allow_route
from crossway.api.attempts import send_upstream
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.relay import usage_event
from crossway.ir.chat import ChatRequest, Document, Image, Text, ToolCall, ToolResult
from crossway.routing import Route

CHARS_PER_TOKEN = 4
TOKENS_PER_MEDIA = 1600  # an image or a document page, roughly, when its size is unknown


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


async def count_tokens(
    req: Request, route: Route, exchange: Exchange, counting: Exchange, field: str, endpoint: str
) -> None:
    """`exchange` is the request to count (it decides which deployments speak the caller's
    format); `counting` is what such a deployment is sent; `field` names the estimate in the
    caller's answer. Counting is not metered: no usage event is recorded."""
    principal = req.principal
    if principal is not None and principal.key is not None:
        route = allow_route(principal, route)
    native = [d for d in route.candidates if not exchange.translated(d)]
    if not native:
        count = estimate_tokens(exchange.request())
        await req.respond(200, orjson.dumps({field: count}))
        return
    route = dataclasses.replace(route, candidates=native, fallbacks=[])
    event = usage_event(req, endpoint, route, stream=False)
    sent = await send_upstream(req, route, "count_tokens", counting, event)
    req.services.health.release(sent.dep)
    await req.respond(sent.resp.status, sent.body)
