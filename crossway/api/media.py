"""OpenAI's media endpoints: image generation and speech, through the same keys, limits,
routing, retries and usage records as chat.

Both go to OpenAI-format upstreams (OpenAI, Azure, OpenAI-compatible servers), passed
through with only the model rewritten; an image model served only by Google is asked through
generateContent or Imagen's `:predict` (see `crossway.api.images`). Speech comes back as the
upstream sends it, byte for byte as it arrives, with its content type, billed by the
character.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.images import GeminiImages, ImagenImages, OpenAIImages, is_imagen
from crossway.api.openai import fallback_models, parse_object, requested_model
from crossway.api.relay import (
    relay_json,
)
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects.common import invalid
from crossway.dialects.registry import OPENAI
from crossway.errors import InvalidRequest
from crossway.ir import Usage
from crossway.routing import Route as ModelRoute

IMAGE_FORMATS = ("url", "b64_json")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
SPEECH_TYPES = ("audio/", "application/octet-stream")  # what a speech answer may be


def openai_format_only(route: ModelRoute, what: str) -> ModelRoute:
    """Only OpenAI-format upstreams offer this endpoint."""
    served = [d for d in route.candidates if d.provider.dialect == "openai"]
    if not served:
        raise InvalidRequest(
            f"model {route.model!r} has no OpenAI-format deployment here, and {what} is only "
            "sent to OpenAI-format upstreams",
            param="model",
            code="unsupported_for_upstream",
            retryable=False,
        )
    return dataclasses.replace(route, candidates=served)


def _text(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, "is required and must be a non-empty string")
    return value


async def images_generations(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = requested_model(req, payload)
    _text(payload, "prompt")
    n = payload.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise invalid("n", "must be a positive integer")
    fmt = payload.get("response_format")
    if fmt is not None and fmt not in IMAGE_FORMATS:
        raise invalid("response_format", "must be 'url' or 'b64_json'")
    route = services.router.resolve(model, req.header(b"vendor"), fallbacks)
    gemini = [d for d in route.candidates if d.provider.dialect == "gemini"]
    if gemini and not any(d.provider.dialect == "openai" for d in route.candidates):
        # a Google image model: Imagen through :predict, Gemini through generateContent
        route = dataclasses.replace(route, candidates=gemini, fallbacks=[])
        if is_imagen(gemini[0]):
            exchange: Exchange = ImagenImages(OPENAI, payload, False)
            await relay_json(req, "images.generations", "images", route, exchange)
        else:
            exchange = GeminiImages(OPENAI, payload, False)
            await relay_json(req, "images.generations", "chat", route, exchange)
        return
    route = openai_format_only(route, "image generation")
    exchange = OpenAIImages(OPENAI, payload, False)
    await relay_json(req, "images.generations", "images", route, exchange)


async def audio_speech(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = requested_model(req, payload)
    text = _text(payload, "input")
    _text(payload, "voice")
    fmt = payload.get("response_format")
    if fmt is not None and fmt not in SPEECH_FORMATS:
        raise invalid("response_format", "must be one of " + ", ".join(SPEECH_FORMATS))
    speed = payload.get("speed")
    if speed is not None and (not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0):
        raise invalid("speed", "must be a number from 0.25 to 4.0")
    route = openai_format_only(
        services.router.resolve(model, req.header(b"vendor"), fallbacks), "speech"
    )
    exchange = Exchange(OPENAI, payload, False)
    await relay_stream(
        req,
        "audio.speech",
        route,
        exchange,
        operation="speech",
        raw_types=SPEECH_TYPES,
        billed=Usage(characters=len(text)),
    )


ROUTES = [
    Route("POST", "/v1/images/generations", images_generations, metered="images.generations"),
    Route("POST", "/v1/audio/speech", audio_speech, metered="audio.speech"),
]
