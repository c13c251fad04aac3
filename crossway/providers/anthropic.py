"""Anthropic's Messages API, natively.

The caller's `anthropic-version` and `anthropic-beta` headers are passed on (never pinned);
a caller that sends none, such as an OpenAI SDK reaching Claude, gets DEFAULT_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossway.providers import register
from crossway.providers.base import Provider

if TYPE_CHECKING:
    from crossway.config import ProviderConfig

DEFAULT_VERSION = "2023-06-01"
_PATHS = {
    "chat": "/v1/messages",
    "chat_stream": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
}
_PASSED = (b"anthropic-version", b"anthropic-beta")


@register
class Anthropic(Provider):
    vendor = "anthropic"
    dialect = "anthropic"
    default_base_url = "https://api.anthropic.com"  # as the anthropic SDK's base URL: no /v1
    api_key_env = ("ANTHROPIC_API_KEY",)
    base_url_env = ("ANTHROPIC_BASE_URL",)
    request_id_header = "request-id"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if self.base_url.endswith("/v1"):  # accept the OpenAI-style base too
            self.base_url = self.base_url[:-3]

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key or ""}

    def url(self, operation: str, upstream_model: str) -> str:
        return self.base_url + _PATHS[operation]

    def forwarded_headers(self, incoming: Callable[[bytes], str | None]) -> bytes:
        lines = b""
        for name in _PASSED:
            value = incoming(name)
            if name == b"anthropic-version" and not value:
                value = DEFAULT_VERSION
            if value and "\r" not in value and "\n" not in value:
                lines += name + b": " + value.encode("latin-1", "replace") + b"\r\n"
        return lines
