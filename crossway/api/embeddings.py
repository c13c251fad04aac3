"""One embeddings request in its caller's format (OpenAI or Gemini), and what each upstream
is sent and answers: passed through when the formats match, else translated
(`crossway.dialects.embeddings`). Used by the attempt loop like a chat `Exchange`."""

from __future__ import annotations

import math
from typing import Any

import orjson

from crossway.api.counting import CHARS_PER_TOKEN
from crossway.api.exchange import Exchange
from crossway.dialects import embeddings as emb
from crossway.dialects.common import untranslatable
from crossway.dialects.registry import Dialect
from crossway.errors import UpstreamError
from crossway.ir import Usage
from crossway.routing import Deployment


class EmbeddingExchange(Exchange):
    __slots__ = ("batch", "embed", "encoding")

    def __init__(self, client: Dialect, payload: dict[str, Any], batch: bool = True) -> None:
        super().__init__(client, payload, False)
        self.batch = batch  # Gemini: batchEmbedContents (else embedContent)
        encoding = payload.get("encoding_format")
        self.encoding = encoding if isinstance(encoding, str) else "float"
        self.embed: emb.EmbedRequest | None = None

    carries_media = False

    def canonical(self) -> emb.EmbedRequest:
        if self.embed is None:
            if self.client.name == "gemini":
                self.embed = emb.gemini_request(self.payload, self.batch)
            else:
                self.embed = emb.openai_request(self.payload)
        return self.embed

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        if not self.translated(dep):
            if self.client.name == "openai":
                self.payload["model"] = dep.upstream_model
            return orjson.dumps(self.payload)
        dialect = dep.provider.dialect
        if dialect == "gemini":
            return orjson.dumps(emb.gemini_body(self.canonical(), dep.upstream_model))
        if dialect == "openai":
            return orjson.dumps(emb.openai_body(self.canonical(), dep.upstream_model))
        raise untranslatable("model", f"embeddings (a {dialect}-format model has none)", dialect)

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            provider = dep.provider
            raise UpstreamError(
                f"upstream {provider.name} ({provider.vendor}) answered embeddings with a body "
                "that is not a JSON object",
                vendor=provider.vendor,
            )
        upstream = dep.provider.dialect
        if not self.translated(dep):
            usage = self.client.usage_from(data)
            return raw, self._estimated(usage) if upstream == "gemini" else usage
        resp = emb.gemini_response(data) if upstream == "gemini" else emb.openai_response(data)
        if upstream == "gemini":
            resp.usage = self._estimated(resp.usage)
        if self.client.name == "gemini":
            out = emb.gemini_answer(resp, self.batch)
        else:
            out = emb.openai_answer(resp, self.payload.get("model") or dep.model, self.encoding)
        return orjson.dumps(out), resp.usage

    def _estimated(self, usage: Usage | None) -> Usage:
        """Gemini's embedding answers count no tokens; the inputs are billed at an estimate."""
        if usage is not None and usage.prompt_tokens:
            return usage
        chars = sum(len(text) for text in self.canonical().inputs)
        return Usage(prompt_tokens=math.ceil(chars / CHARS_PER_TOKEN))
