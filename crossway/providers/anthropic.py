"""Anthropic, through its OpenAI-compatible chat endpoint.

Until the Anthropic dialect lands, Claude is reached at `{base}/chat/completions`, which
Anthropic serves for OpenAI SDK users; auth is the usual `x-api-key`.
"""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class Anthropic(Provider):
    vendor = "anthropic"
    default_base_url = "https://api.anthropic.com/v1"
    api_key_env = ("ANTHROPIC_API_KEY",)
    base_url_env = ("ANTHROPIC_BASE_URL",)
    request_id_header = "request-id"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key or "", "anthropic-version": "2023-06-01"}
