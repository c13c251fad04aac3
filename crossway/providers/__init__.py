"""The provider registry: vendor type name -> Provider class.

Each vendor lives in its own module and registers itself with `@register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from crossway.providers.base import OpenAICompatible, Provider

PROVIDER_TYPES: dict[str, type[Provider]] = {}

P = TypeVar("P", bound=type[Provider])


def register(cls: P) -> P:
    PROVIDER_TYPES[cls.vendor] = cls
    return cls


def providers_from_environment(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """One provider per vendor whose key is in the environment, named after the vendor."""
    found = {}
    for vendor, cls in PROVIDER_TYPES.items():
        config = cls.from_environment(environ)
        if config is not None:
            found[vendor] = config
    return found


register(OpenAICompatible)

# vendor modules register themselves on import
from crossway.providers import (  # noqa: E402
    anthropic,
    azure,
    deepseek,
    google,
    mistral,
    openai,
    vertex,
    volcengine,
    xai,
)

__all__ = [
    "PROVIDER_TYPES",
    "OpenAICompatible",
    "Provider",
    "anthropic",
    "azure",
    "deepseek",
    "google",
    "mistral",
    "openai",
    "providers_from_environment",
    "register",
    "vertex",
    "volcengine",
    "xai",
]
