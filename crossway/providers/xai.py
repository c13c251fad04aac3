"""xAI (Grok): OpenAI-format chat. Registered as `x`, the vendor header's name for it."""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class XAI(Provider):
    vendor = "x"
    default_base_url = "https://api.x.ai/v1"
    api_key_env = ("XAI_API_KEY",)
