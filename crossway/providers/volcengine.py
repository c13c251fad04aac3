"""Volcengine Ark (Doubao, and the Kimi and DeepSeek models it hosts): OpenAI-format chat."""

from crossway.providers import register
from crossway.providers.base import Provider


@register
class Volcengine(Provider):
    vendor = "volcengine"
    default_base_url = "https://ark.cn-beijing.volces.com/api/v3"
    api_key_env = ("ARK_API_KEY", "VOLCENGINE_API_KEY")
    base_url_env = ("ARK_BASE_URL",)
    request_id_header = "x-client-request-id"
