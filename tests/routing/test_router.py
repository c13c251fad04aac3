"""Router: names, aliases, prefixes, pins, weights, priorities and cool-downs."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from crossway.catalog import Catalog
from crossway.config import Settings
from crossway.errors import InvalidRequest, NotFound
from crossway.providers import PROVIDER_TYPES, Provider
from crossway.providers.transport import Transport
from crossway.routing import BreakerPolicy, Health, ModelTable, Router


def make_router(data: dict[str, Any], health: Health | None = None) -> Router:
    settings = Settings.model_validate(data)
    providers: dict[str, Provider] = {
        n: PROVIDER_TYPES[c.type](n, c) for n, c in settings.providers.items()
    }
    transports = {n: Transport(p) for n, p in providers.items()}
    table = ModelTable.build(settings, Catalog.load(), providers, transports)
    return Router(table, PROVIDER_TYPES, providers, health)


BASE: dict[str, Any] = {
    "providers": {
        "openai": {"type": "openai", "api_key": "k"},
        "backup": {"type": "openai", "api_key": "k2"},
        "azure-eu": {
            "type": "azure",
            "api_key": "k",
            "base_url": "https://r.example",
            "models": {"gpt-4o": "prod"},
        },
        "vllm": {
            "type": "openai-compatible",
            "base_url": "http://127.0.0.1:1/v1",
            "models": {"qwen": "Qwen/Qwen2.5-7B-Instruct"},
        },
    },
    "models": {
        "weighted": {
            "deployments": [
                {"provider": "openai", "model": "a", "weight": 3},
                {"provider": "backup", "model": "b", "weight": 1},
            ]
        },
        "tiered": {
            "deployments": [
                {"provider": "openai", "model": "a", "priority": 0},
                {"provider": "backup", "model": "b", "priority": 1},
            ]
        },
    },
    "aliases": {"smart": "gpt-4o"},
}


def test_plain_alias_prefix_and_pin() -> None:
    router = make_router(BASE)
    assert {d.provider.name for d in router.resolve("gpt-4o").candidates} == {
        "openai",
        "backup",
        "azure-eu",
    }
    assert router.resolve("smart").model == "gpt-4o"
    # a pin names a vendor type (every account of it) or one provider by name
    route = router.resolve("openai/gpt-4o")
    assert route.model == "gpt-4o"
    assert {d.provider.name for d in route.candidates} == {"openai", "backup"}
    assert {d.provider.name for d in router.resolve("backup/gpt-4o").candidates} == {"backup"}
    azure = router.resolve("gpt-4o", pin="azure")
    assert [d.upstream_model for d in azure.candidates] == ["prod"]
    assert router.resolve("gpt-4o", pin="auto").model == "gpt-4o"
    assert [d.upstream_model for d in router.resolve("qwen").candidates] == [
        "Qwen/Qwen2.5-7B-Instruct"
    ]
    # a catalog alias resolves to its model
    info = Catalog.load().get("gpt-4o")
    assert info is not None
    for alias in info.aliases:
        assert router.resolve(alias).model == "gpt-4o"


def test_errors_name_what_was_asked_and_what_exists() -> None:
    router = make_router(BASE)
    with pytest.raises(NotFound) as missing:
        router.resolve("gpt-4oo")
    assert "'gpt-4oo'" in missing.value.message and "gpt-4o" in missing.value.message
    with pytest.raises(InvalidRequest) as unknown:
        router.resolve("gpt-4o", pin="acme")
    assert "unknown vendor 'acme'" in unknown.value.message
    with pytest.raises(InvalidRequest) as not_served:
        router.resolve("qwen", pin="openai")
    assert "does not serve model 'qwen'" in not_served.value.message
    assert "vllm" in not_served.value.message
    with pytest.raises(NotFound):
        router.resolve("anthropic/claude-sonnet-4")  # the vendor exists, not configured here


def test_weights_shape_the_choice() -> None:
    router = make_router(BASE)
    router._random.seed(1234)
    first = collections.Counter(
        router.resolve("weighted").candidates[0].upstream_model for _ in range(4000)
    )
    assert 2800 < first["a"] < 3200  # 3:1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_priorities_and_cooldown() -> None:
    clock = Clock()
    health = Health(BreakerPolicy(failure_threshold=2, cooldown_seconds=60), clock)
    router = make_router(BASE, health)
    for _ in range(50):
        assert [d.upstream_model for d in router.resolve("tiered").candidates] == ["a", "b"]
    primary = router.table.deployments["tiered"][0]
    health.failure(primary)
    assert router.resolve("tiered").candidates[0] is primary  # one failure is not enough
    health.failure(primary)
    assert [d.upstream_model for d in router.resolve("tiered").candidates] == ["b", "a"]
    clock.now += 61  # the cool-down ends by itself: one probe may go
    assert router.resolve("tiered").candidates[0] is primary
    health.started(primary)
    health.success(primary)
    health.release(primary)
    health.failure(primary)
    assert router.resolve("tiered").candidates[0] is primary  # closed again; counting anew


def test_explicit_models_replace_catalog_deployments() -> None:
    data = {**BASE, "models": {"gpt-4o": {"deployments": [{"provider": "backup"}]}}}
    router = make_router(data)
    route = router.resolve("gpt-4o")
    assert [(d.provider.name, d.upstream_model) for d in route.candidates] == [("backup", "gpt-4o")]
