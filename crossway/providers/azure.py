"""Azure OpenAI: deployment paths, `api-version`, and the `api-key` header.

A deployment's upstream model name is the Azure deployment name.
Environment: AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION, and
AZURE_OPENAI_DEPLOYMENTS ("gpt-4o,gpt-4o-mini=mini-prod": public id, optionally =deployment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from crossway.providers import register
from crossway.providers.base import OPENAI_PATHS, Provider

if TYPE_CHECKING:
    from crossway.config import ProviderConfig

DEFAULT_API_VERSION = "2024-10-21"


@register
class Azure(Provider):
    vendor = "azure"
    api_key_env = ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
    base_url_env = ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE")
    request_id_header = "apim-request-id"
    # deployment names are the user's own: serve only the models the config names
    catalog_models_default = False
    max_tokens_field = "max_completion_tokens"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self.api_version = config.api_version or DEFAULT_API_VERSION

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key or ""}

    def url(self, operation: str, upstream_model: str) -> str:
        deployment = quote(upstream_model, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}{OPENAI_PATHS[operation]}"
            f"?api-version={self.api_version}"
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> dict[str, Any] | None:
        config = super().from_environment(environ)
        if config is None or "base_url" not in config:
            return None
        version = environ.get("OPENAI_API_VERSION") or environ.get("AZURE_OPENAI_API_VERSION")
        if version:
            config["api_version"] = version
        deployments: dict[str, str] = {}
        for item in environ.get("AZURE_OPENAI_DEPLOYMENTS", "").split(","):
            public, _, deployment = item.strip().partition("=")
            if public:
                deployments[public] = deployment or public
        config["models"] = deployments
        return config
