"""OpenAI's own API."""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class OpenAI(Provider):
    vendor = "openai"
    default_base_url = "https://api.openai.com/v1"
    api_key_env = ("OPENAI_API_KEY",)
    base_url_env = ("OPENAI_BASE_URL",)
    max_tokens_field = "max_completion_tokens"  # max_tokens is deprecated for o-series models
