"""Google AI Studio (Gemini), through its OpenAI-compatible endpoint.

Until the Gemini dialect lands, Gemini is reached at `{base}/chat/completions` under
`/v1beta/openai`, which Google serves for OpenAI SDK users with a Bearer API key.
"""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class Google(Provider):
    vendor = "google"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
