"""OpenAI's media endpoints: image generation and speech, through the same keys, limits,
routing, retries and usage records as chat.

Both go to OpenAI-format upstreams (OpenAI, Azure, OpenAI-compatible servers), passed
through with only the model rewritten; an image model served only by Gemini is asked through
generateContent (see `GeminiImageExchange`). Speech comes back as the upstream sends it, byte for
byte as it arrives, with its content type.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.openai import fallback_models, parse_object, requested_model
from crossway.api.relay import (
    relay_json,
)
from crossway.api.routes import Route
from crossway.api.streaming import relay_stream
from crossway.dialects.common import data_url, invalid
from crossway.dialects.gemini.usage import usage_from as gemini_usage
from crossway.dialects.registry import OPENAI
from crossway.errors import InvalidRequest, UpstreamError
from crossway.ir import Usage
from crossway.routing import Deployment
from crossway.routing import Route as ModelRoute

IMAGE_FORMATS = ("url", "b64_json")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


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
        # a Gemini image model: asked through generateContent for an image answer
        route = dataclasses.replace(route, candidates=gemini, fallbacks=[])
        exchange: Exchange = GeminiImageExchange(OPENAI, payload, False)
        await relay_json(req, "images.generations", "chat", route, exchange)
        return
    route = openai_format_only(route, "image generation")
    await relay_json(req, "images.generations", "images", route, Exchange(OPENAI, payload, False))


class GeminiImageExchange(Exchange):
    """OpenAI's image generation, asked of a Gemini image model: the prompt as a user turn,
    `responseModalities: [IMAGE]`, `n` as candidates; the images back as `b64_json`, or as
    `data:` URLs when `url` was asked for (Crossway stores no files to link to)."""

    __slots__ = ()

    carries_media = False

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        payload = self.payload
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if payload.get("n", 1) != 1:
            config["candidateCount"] = payload["n"]
        body = {
            "contents": [{"role": "user", "parts": [{"text": payload["prompt"]}]}],
            "generationConfig": config,
        }
        return orjson.dumps(body)

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise _not_images(dep, "is not a JSON object")
        as_url = (self.payload.get("response_format") or "url") == "url"  # OpenAI's default
        images = []
        for candidate in data.get("candidates") or ():
            for part in (candidate.get("content") or {}).get("parts") or ():
                inline = part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and inline.get("data"):
                    mime, b64 = str(inline.get("mimeType") or "image/png"), str(inline["data"])
                    images.append({"url": data_url(mime, b64)} if as_url else {"b64_json": b64})
        if not images:
            raise _not_images(dep, "holds no image")
        out = {"created": int(time.time()), "data": images}
        return orjson.dumps(out), gemini_usage(data.get("usageMetadata"))


def _not_images(dep: Deployment, what: str) -> UpstreamError:
    provider = dep.provider
    return UpstreamError(
        f"upstream {provider.name} ({provider.vendor}) was asked for an image and its answer "
        f"{what}",
        vendor=provider.vendor,
    )


async def audio_speech(req: Request) -> None:
    services = req.services
    payload = parse_object(await req.body(services.settings.server.max_body_bytes))
    fallbacks = fallback_models(payload)
    model = requested_model(req, payload)
    _text(payload, "input")
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
    await relay_stream(req, "audio.speech", route, exchange, operation="speech", raw=True)


ROUTES = [
    Route("POST", "/v1/images/generations", images_generations, metered="images.generations"),
    Route("POST", "/v1/audio/speech", audio_speech, metered="audio.speech"),
]
