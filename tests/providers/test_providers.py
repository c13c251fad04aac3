"""Provider modules: URLs, auth headers, the registry, secrets kept out of messages."""

from __future__ import annotations

from crossway.config import ProviderConfig
from crossway.providers import PROVIDER_TYPES, providers_from_environment
from crossway.providers.errors import upstream_error


def make(kind: str, **cfg: object) -> object:
    return PROVIDER_TYPES[kind]("p", ProviderConfig.model_validate({"type": kind, **cfg}))


def test_registry_has_every_openai_format_vendor() -> None:
    assert {
        "openai",
        "azure",
        "anthropic",
        "google",
        "deepseek",
        "mistral",
        "volcengine",
        "x",
        "openai-compatible",
    } <= set(PROVIDER_TYPES)


def test_urls_and_headers() -> None:
    openai = PROVIDER_TYPES["openai"]("o", ProviderConfig(type="openai", api_key="sk-1"))
    assert openai.url("chat", "gpt-4o") == "https://api.openai.com/v1/chat/completions"
    assert openai.headers["authorization"] == "Bearer sk-1"
    azure = PROVIDER_TYPES["azure"](
        "a",
        ProviderConfig(
            type="azure",
            api_key="az",
            base_url="https://r.openai.azure.com/",
            api_version="2025-01",
        ),
    )
    assert azure.url("embeddings", "my embed") == (
        "https://r.openai.azure.com/openai/deployments/my%20embed/embeddings?api-version=2025-01"
    )
    assert azure.headers["api-key"] == "az" and "authorization" not in azure.headers
    ark = PROVIDER_TYPES["volcengine"]("v", ProviderConfig(type="volcengine", api_key="ark"))
    assert ark.url("chat", "x") == "https://ark.cn-beijing.volces.com/api/v3/chat/completions"
    claude = PROVIDER_TYPES["anthropic"]("c", ProviderConfig(type="anthropic", api_key="ant"))
    assert claude.headers["x-api-key"] == "ant"
    local = PROVIDER_TYPES["openai-compatible"](
        "l",
        ProviderConfig(
            type="openai-compatible", base_url="http://127.0.0.1:11434/v1", headers={"x-extra": "1"}
        ),
    )
    assert "authorization" not in local.headers and local.headers["x-extra"] == "1"
    assert not PROVIDER_TYPES["mistral"](
        "m", ProviderConfig(type="mistral", api_key="m")
    ).stream_usage


def test_environment_names() -> None:
    found = providers_from_environment(
        {
            "XAI_API_KEY": "x",
            "ARK_API_KEY": "a",
            "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
            "OPENAI_API_KEY": "o",
        }
    )
    assert found == {
        "x": {"type": "x", "api_key": "x"},
        "volcengine": {"type": "volcengine", "api_key": "a"},
        "openai": {"type": "openai", "api_key": "o", "base_url": "http://127.0.0.1:1/v1"},
    }


def test_upstream_errors_never_carry_the_providers_key() -> None:
    provider = PROVIDER_TYPES["openai"]("o", ProviderConfig(type="openai", api_key="sk-SECRET"))
    body = b'{"error": {"message": "Incorrect API key provided: sk-SECRET", "type": "x"}}'
    err = upstream_error(provider, 401, body, {})
    assert err.status == 502 and "sk-SECRET" not in err.message
    err = upstream_error(provider, 500, b"<html>sk-SECRET broke</html>", {"Retry-After": "3"})
    assert err.status == 502 and "sk-SECRET" not in err.message
    assert err.headers == {"retry-after": "3"}
