"""What every provider module declares: where its API lives, how to authenticate, its dialect.

A provider is one configured upstream account (a vendor type, a key, a base URL). Vendor
modules subclass `Provider` and register themselves; nothing else knows vendor names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from crossway.dialects.openai.requests import UpstreamOptions

if TYPE_CHECKING:
    from crossway.config import ProviderConfig

# operation name -> path under the provider's base URL (OpenAI layout)
OPENAI_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "chat_stream": "/chat/completions",
    "embeddings": "/embeddings",
    "embed_one": "/embeddings",  # a Gemini caller's embedContent, translated
    "embed_batch": "/embeddings",  # ... and batchEmbedContents
    "images": "/images/generations",
    "speech": "/audio/speech",
    "transcriptions": "/audio/transcriptions",
    "translations": "/audio/translations",
}


class Provider:
    vendor: ClassVar[str]  # the registry name, used as `type:` in config and in the vendor header
    # the vendor a `vendor` pin and the catalog know it as, when that is not its own name
    # (Vertex AI is `google` to callers and serves the catalog's Google models)
    family: ClassVar[str | None] = None
    dialect: ClassVar[str] = "openai"
    default_base_url: ClassVar[str | None] = None
    # environment variables that configure this vendor when there is no config file
    api_key_env: ClassVar[tuple[str, ...]] = ()
    base_url_env: ClassVar[tuple[str, ...]] = ()
    requires_api_key: ClassVar[bool] = True
    stream_usage_default: ClassVar[bool] = True
    catalog_models_default: ClassVar[bool] = True
    request_id_header: ClassVar[str] = "x-request-id"
    # the field an OpenAI-format upstream reads the output limit from, in translated requests
    max_tokens_field: ClassVar[str] = "max_tokens"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        base = config.base_url or self.default_base_url
        if base is None:  # check_config has already refused this
            raise ValueError(f"provider {name}: base_url is required")
        self.base_url = base.rstrip("/")
        self.api_key = config.api_key.get_secret_value() if config.api_key else None
        self.stream_usage = (
            config.stream_usage if config.stream_usage is not None else self.stream_usage_default
        )
        self.catalog_models = (
            config.catalog_models
            if config.catalog_models is not None
            else self.catalog_models_default
        )
        self.headers: dict[str, str] = {"content-type": "application/json"}
        self.headers.update(self.auth_headers())
        self.headers.update(config.headers)
        self.upstream_options = UpstreamOptions(self.max_tokens_field, self.stream_usage)

    # --- what vendor modules override -------------------------------------------------------

    @property
    def catalog_vendor(self) -> str:
        return self.family or self.vendor

    def answers_to(self, pin: str) -> bool:
        """Does a `vendor` pin (a vendor type or this provider's name) select this one?"""
        return pin in (self.vendor, self.name) or pin == self.family

    # media given by URL must be fetched and sent inline (the upstream cannot read URLs)
    inline_media_urls: ClassVar[bool] = False

    # whether `auth_lines()` must be awaited for every request (tokens that expire)
    dynamic_auth: ClassVar[bool] = False

    async def auth_lines(self) -> bytes:
        """Per-request credentials as raw header lines (for `dynamic_auth` providers)."""
        return b""

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def url(self, operation: str, upstream_model: str) -> str:
        return self.base_url + OPENAI_PATHS[operation]

    def forwarded_headers(self, incoming: Callable[[bytes], str | None]) -> bytes:
        """Headers of the caller's request this vendor needs passed on, as raw header lines."""
        return b""

    @classmethod
    def check_config(cls, config: ProviderConfig) -> list[tuple[str, str]]:
        """Problems with a provider's settings, as (field, reason)."""
        problems = []
        if cls.requires_api_key and config.api_key is None:
            hint = f" (or set {cls.api_key_env[0]})" if cls.api_key_env else ""
            problems.append(("api_key", f"required for type {cls.vendor!r}{hint}"))
        if config.base_url is None and cls.default_base_url is None:
            problems.append(("base_url", f"required for type {cls.vendor!r}"))
        if config.ca_file is not None and not Path(config.ca_file).is_file():
            problems.append(("ca_file", f"no such file: {config.ca_file}"))
        return problems

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> dict[str, Any] | None:
        """Provider settings read from the usual environment variables, or None."""
        key = next((environ[v] for v in cls.api_key_env if environ.get(v)), None)
        if key is None:
            return None
        config: dict[str, Any] = {"type": cls.vendor, "api_key": key}
        base = next((environ[v] for v in cls.base_url_env if environ.get(v)), None)
        if base:
            config["base_url"] = base
        return config

    def redact(self, text: str) -> str:
        """Remove this provider's secret from text that may reach a client or a log."""
        if self.api_key and self.api_key in text:
            text = text.replace(self.api_key, "***")
        return text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"


class OpenAICompatible(Provider):
    """Any server that speaks OpenAI's chat API: vLLM, Ollama, llama.cpp, LM Studio..."""

    vendor = "openai-compatible"
    requires_api_key = False
    # such a server serves what its config lists, not the catalog's vendor models
    catalog_models_default = False
