"""One chat request in its caller's wire format, and what each upstream is sent and answers.

When a deployment speaks the caller's dialect, the parsed body goes on with only the model
(and the usage option of streams) changed: unknown fields, betas and `cache_control` survive.
Otherwise the body is decoded once into the canonical `ChatRequest` and encoded for that
upstream, and the answer is decoded and encoded back the same way.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any, ClassVar

import orjson

from crossway.dialects.common import StreamOptions, invalid
from crossway.dialects.registry import DIALECTS, Dialect
from crossway.errors import UpstreamError
from crossway.ir import Usage
from crossway.ir.chat import ChatRequest, Document, Image, ToolCall, ToolResult
from crossway.providers.fetch import FetchPolicy, FetchRefused, fetch_media
from crossway.routing import Deployment


class Exchange:
    __slots__ = ("_request", "client", "json_array", "model", "payload", "stream", "wants_usage")

    def __init__(
        self,
        client: Dialect,
        payload: dict[str, Any],
        stream: bool,
        wants_usage: bool = True,
        *,
        model: str | None = None,
        json_array: bool = False,
    ) -> None:
        self.client = client
        self.payload = payload
        self.stream = stream
        # an OpenAI caller that did not ask for stream usage gets none, even though Crossway
        # asks the upstream for it to meter the request
        self.wants_usage = wants_usage
        self.model = model  # for formats that name the model in the path (Gemini)
        self.json_array = json_array  # Gemini without alt=sse
        self._request: ChatRequest | None = None

    @property
    def stream_options(self) -> StreamOptions:
        return StreamOptions(include_usage=self.wants_usage, json_array=self.json_array)

    def stream_translated(self, dep: Deployment) -> bool:
        """Is the stream re-encoded? Also when only its framing differs (a JSON array)."""
        return self.json_array or self.translated(dep)

    def translated(self, dep: Deployment) -> bool:
        return dep.provider.dialect != self.client.name

    def request(self) -> ChatRequest:
        """The canonical request, decoded on first need (only translated paths need it)."""
        if self._request is None:
            self._request = self.client.decode_request(self.payload)
            self._request.stream = self.stream  # Gemini says it in the path, not the body
            if self.model is not None:
                self._request.model = self.model
        return self._request

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        provider = dep.provider
        if not self.translated(dep):
            self.client.prepare_passthrough(
                self.payload, dep.upstream_model, provider.upstream_options, self.wants_usage
            )
            return orjson.dumps(self.payload)
        request = self.request()
        if request.thinking is not None and not dep.reasoning:
            # a model without reasoning settings refuses them; its answer is still useful
            request = dataclasses.replace(request, thinking=None)
        upstream = DIALECTS[provider.dialect]
        body = upstream.encode_request(request, dep.upstream_model, provider.upstream_options)
        return orjson.dumps(body)

    # whether the body can hold media by URL (a chat conversation; not an embedding, an
    # upload or an image prompt)
    carries_media: ClassVar[bool] = True

    async def prepare(self, dep: Deployment, policy: FetchPolicy) -> None:
        """Fetch media given by URL for an upstream that takes only bytes (once each)."""
        if not (self.carries_media and dep.provider.inline_media_urls and self.translated(dep)):
            return
        for i, message in enumerate(self.request().messages):
            for j, part in enumerate(message.parts):
                items = part.content if isinstance(part, ToolResult) else [part]
                for item in items:
                    if isinstance(item, Image | Document) and item.url and item.data is None:
                        try:
                            fetched = await fetch_media(item.url, policy)
                        except FetchRefused as exc:
                            where = f"messages[{i}].content[{j}]"
                            raise invalid(where, exc.message, "media_fetch_refused") from None
                        item.data = base64.b64encode(fetched.data).decode()
                        item.media_type = fetched.media_type
                        item.url = None

    def headers(self) -> bytes:
        """Raw header lines of this body's own (none: JSON, the transport's default)."""
        return b""

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        """The upstream's successful answer in the caller's format, and its usage."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad_body(dep, "is not JSON") from None
        if not self.translated(dep):
            return raw, self.client.usage_from(data)
        if not isinstance(data, dict):
            raise _bad_body(dep, "is not a JSON object")
        upstream = DIALECTS[dep.provider.dialect]
        response = upstream.decode_response(data)
        renamed = upstream.renamed_tools(self.request())
        if renamed:
            for part in response.parts:
                if isinstance(part, ToolCall):
                    part.name = renamed.get(part.name, part.name)
        model = response.model or dep.upstream_model
        return orjson.dumps(self.client.encode_response(response, model)), response.usage


def _bad_body(dep: Deployment, what: str) -> UpstreamError:
    provider = dep.provider
    return UpstreamError(
        f"upstream {provider.name} ({provider.vendor}) answered with a body that {what}",
        vendor=provider.vendor,
    )
