"""Google's Gemini API (AI Studio), natively: `generateContent` with an API key.

The base URL may carry the API version (`…/v1beta`); without one, `api_version` (default
v1beta) is added. Streams are asked for as SSE (`alt=sse`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from crossway.providers import register
from crossway.providers.base import Provider

if TYPE_CHECKING:
    from crossway.config import ProviderConfig

ACTIONS = {
    "chat": ":generateContent",
    "chat_stream": ":streamGenerateContent?alt=sse",
    "count_tokens": ":countTokens",
    "embeddings": ":batchEmbedContents",  # an OpenAI caller's inputs, one request each
    "embed_one": ":embedContent",
    "embed_batch": ":batchEmbedContents",
    "images": ":predict",  # Imagen
}
_VERSIONS = ("/v1", "/v1beta", "/v1alpha", "/v1beta1")


@register
class Google(Provider):
    vendor = "google"
    dialect = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    request_id_header = "x-goog-request-id"
    default_api_version: ClassVar[str] = "v1beta"
    inline_media_urls = True  # AI Studio reads only its own Files API URIs

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        base = self.base_url.removesuffix("/openai")  # the OpenAI-compatible base, as configured
        if not base.endswith(_VERSIONS):
            base += "/" + (config.api_version or self.default_api_version)
        self.base_url = base

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key or ""}

    def url(self, operation: str, upstream_model: str) -> str:
        return f"{self.base_url}/{self.model_path(upstream_model)}{ACTIONS[operation]}"

    def model_path(self, upstream_model: str) -> str:
        return "models/" + quote(upstream_model.removeprefix("models/"), safe="")
