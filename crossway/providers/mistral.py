"""Mistral: OpenAI-format chat and embeddings.

Mistral rejects `stream_options` but reports usage in a stream's last chunk by itself.
"""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class Mistral(Provider):
    vendor = "mistral"
    default_base_url = "https://api.mistral.ai/v1"
    api_key_env = ("MISTRAL_API_KEY",)
    stream_usage_default = False
