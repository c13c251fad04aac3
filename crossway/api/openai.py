"""The OpenAI-compatible front door: chat completions, embeddings, models."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.api.embeddings import EmbeddingExchange
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.models import get_model, list_models
from crossway.api.relay import relay_json
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects.registry import OPENAI
from crossway.errors import InvalidRequest


def parse_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise InvalidRequest(
            "the request body is empty; expected a JSON object",
            code="invalid_json",
            retryable=False,
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json", retryable=False
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, not {type(payload).__name__}",
            code="invalid_json",
            retryable=False,
        )
    return payload


def _missing(field: str) -> InvalidRequest:
    return InvalidRequest(
        f"missing required parameter: '{field}'",
        param=field,
        code="missing_required_parameter",
        retryable=False,
    )


def _wrong_type(field: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"'{field}' must be {expected}, not {_json_type(value)}",
        param=field,
        code="invalid_type",
        retryable=False,
    )


def _json_type(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), "a value")


def fallback_models(payload: dict[str, Any]) -> list[str]:
    """OpenRouter's `models`: models to try in order; taken out of the body (no upstream
    knows it). Without `model`, the first of them is the model."""
    models = payload.pop("models", None)
    if models is None:
        return []
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise _wrong_type("models", "an array of model names", models)
    if payload.get("model") is None and models:
        payload["model"] = models[0]
    return [m for m in models if m != payload.get("model")]


def requested_model(req: Request, payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if model is None:
        default = req.services.settings.routing.default_model
        if default is None:
            raise _missing("model")
        return default
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    if not model.strip():
        raise InvalidRequest("'model' must not be empty", param="model", retryable=False)
    return model


def _check_messages(payload: dict[str, Any]) -> None:
    messages = payload.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array of messages", messages)
    if not messages:
        raise InvalidRequest(
            "'messages' must contain at least one message",
            param="messages",
            code="empty_array",
            retryable=False,
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _wrong_type(f"messages[{i}]", "an object", message)
        if not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"'messages[{i}].role' is required and must be a string",
                param=f"messages[{i}].role",
                retryable=False,
            )


async def chat_completions(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = requested_model(req, payload)
    _check_messages(payload)
    stream = payload.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    route = services.router.resolve(model, req.header(b"vendor"), fallbacks)
    if not stream:
        await relay_json(req, "chat.completions", "chat", route, Exchange(OPENAI, payload, False))
        return
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    wants_usage = bool(options and options.get("include_usage") is True)
    await relay_stream(req, "chat.completions", route, Exchange(OPENAI, payload, True, wants_usage))


async def embeddings(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = requested_model(req, payload)
    if "input" not in payload:
        raise _missing("input")
    route = services.router.resolve(model, req.header(b"vendor"), fallbacks)
    await relay_json(req, "embeddings", "embeddings", route, EmbeddingExchange(OPENAI, payload))


ROUTES = [
    Route("POST", "/v1/chat/completions", chat_completions, metered="chat.completions"),
    Route("POST", "/v1/embeddings", embeddings, metered="embeddings"),
    Route("GET", "/v1/models", list_models),
    Route("GET", "/v1/models/", get_model),
]
