"""DeepSeek: OpenAI-format chat (deepseek-chat, deepseek-reasoner)."""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class DeepSeek(Provider):
    vendor = "deepseek"
    default_base_url = "https://api.deepseek.com/v1"
    api_key_env = ("DEEPSEEK_API_KEY",)
