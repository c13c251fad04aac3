"""OpenAI's image generation, as each kind of upstream is asked for it.

- OpenAI-format upstreams (OpenAI, Azure, OpenAI-compatible servers): the body passed
  through, the answer checked to hold images and passed back (`OpenAIImages`).
- Gemini image models: `generateContent` with `responseModalities: [IMAGE]` (`GeminiImages`).
- Imagen, which answers only `:predict` (`ImagenImages`).

Gemini and Imagen answers come back in OpenAI's shape: `b64_json`, or `data:` URLs when `url`
was asked for (Crossway stores no files to link to). Every answer counts its images for
billing, and an answer without any is a 502 that says so.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from crossway.api.exchange import Exchange
from crossway.dialects.common import data_url
from crossway.dialects.gemini.usage import usage_from as gemini_usage
from crossway.dialects.openai.usage import media_usage_from
from crossway.errors import InvalidRequest, UpstreamError
from crossway.ir import Usage
from crossway.routing import Deployment

# the aspect ratios Gemini and Imagen take, by width / height
_ASPECTS = {"1:1": 1.0, "3:4": 0.75, "4:3": 4 / 3, "9:16": 9 / 16, "16:9": 16 / 9}


def is_imagen(dep: Deployment) -> bool:
    """Imagen models answer `:predict`, not `generateContent`."""
    return dep.upstream_model.removeprefix("models/").startswith("imagen")


def aspect_ratio(size: object) -> str | None:
    """OpenAI's `size` ("1792x1024") as the nearest aspect ratio Google takes ("16:9")."""
    if not isinstance(size, str) or "x" not in size:
        return None  # "auto" or absent: the model's default
    width, _, height = size.partition("x")
    try:
        ratio = int(width) / int(height)
    except (ValueError, ZeroDivisionError):
        return None
    return min(_ASPECTS, key=lambda name: abs(_ASPECTS[name] - ratio))


class OpenAIImages(Exchange):
    __slots__ = ()

    carries_media = False

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        data = _json_object(dep, raw)
        items = data.get("data")
        if not (
            isinstance(items, list)
            and items
            and all(isinstance(i, dict) and (i.get("url") or i.get("b64_json")) for i in items)
        ):
            raise not_images(dep, "holds no image")
        usage = media_usage_from(data)  # gpt-image-1 reports tokens
        usage.images = len(items)
        return raw, usage


class GoogleImages(Exchange):
    """What the Gemini and Imagen answers share: OpenAI's answer made from their images."""

    __slots__ = ()

    carries_media = False

    def _openai_answer(self, dep: Deployment, images: list[tuple[str, str]]) -> bytes:
        if not images:
            raise not_images(dep, "holds no image")
        as_url = (self.payload.get("response_format") or "url") == "url"  # OpenAI's default
        data = [
            {"url": data_url(mime, b64)} if as_url else {"b64_json": b64} for mime, b64 in images
        ]
        return orjson.dumps({"created": int(time.time()), "data": data})


class GeminiImages(GoogleImages):
    """The prompt as a user turn, `responseModalities: [IMAGE]`, `n` as candidates."""

    __slots__ = ()

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        payload = self.payload
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if payload.get("n", 1) != 1:
            config["candidateCount"] = payload["n"]
        aspect = aspect_ratio(payload.get("size"))
        if aspect is not None:
            config["imageConfig"] = {"aspectRatio": aspect}
        body = {
            "contents": [{"role": "user", "parts": [{"text": payload["prompt"]}]}],
            "generationConfig": config,
        }
        return orjson.dumps(body)

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        data = _json_object(dep, raw)
        images = []
        for candidate in data.get("candidates") or ():
            for part in (candidate.get("content") or {}).get("parts") or ():
                inline = part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and inline.get("data"):
                    images.append((str(inline.get("mimeType") or "image/png"), str(inline["data"])))
        body = self._openai_answer(dep, images)
        usage = gemini_usage(data.get("usageMetadata")) or Usage()
        usage.images = len(images)
        return body, usage


class ImagenImages(GoogleImages):
    """`:predict` with the prompt as the one instance and `n` as `sampleCount`."""

    __slots__ = ()

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        payload = self.payload
        parameters: dict[str, Any] = {"sampleCount": payload.get("n", 1)}
        aspect = aspect_ratio(payload.get("size"))
        if aspect is not None:
            parameters["aspectRatio"] = aspect
        parameters["includeRaiReason"] = True  # say why an image was held back
        body = {"instances": [{"prompt": payload["prompt"]}], "parameters": parameters}
        return orjson.dumps(body)

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        data = _json_object(dep, raw)
        images, withheld = [], []
        for prediction in data.get("predictions") or ():
            if not isinstance(prediction, dict):
                continue
            if prediction.get("bytesBase64Encoded"):
                mime = str(prediction.get("mimeType") or "image/png")
                images.append((mime, str(prediction["bytesBase64Encoded"])))
            elif prediction.get("raiFilteredReason"):
                withheld.append(str(prediction["raiFilteredReason"]))
        if not images and withheld:
            # the prompt, not the upstream, is at fault: OpenAI's answer to the same is a 400
            raise InvalidRequest(
                "the image model withheld every image: " + "; ".join(withheld),
                param="prompt",
                code="content_policy_violation",
                retryable=False,
            )
        return self._openai_answer(dep, images), Usage(images=len(images))


def _json_object(dep: Deployment, raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise not_images(dep, "is not a JSON object")
    return data


def not_images(dep: Deployment, what: str) -> UpstreamError:
    provider = dep.provider
    return UpstreamError(
        f"upstream {provider.name} ({provider.vendor}) was asked for an image and its answer "
        f"{what}",
        vendor=provider.vendor,
    )
