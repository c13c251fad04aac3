"""Deployments: where a public model id can be served, and the table of all of them.

The table is built once at start-up from the catalog (models a configured vendor serves), the
providers' own `models`, and the explicit `models:` section, which wins for the ids it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from crossway.catalog import Catalog
from crossway.config import Settings
from crossway.providers.base import Provider
from crossway.providers.transport import Transport
from crossway.routing.health import Breaker


@dataclass(slots=True, eq=False)
class Deployment:
    model: str  # the public id
    provider: Provider
    transport: Transport
    upstream_model: str
    weight: float = 1.0
    priority: int = 0
    breaker: Breaker = field(default_factory=Breaker)
    # the catalog's price of a million input + output tokens, for the lowest-cost strategy
    price: float = 0.0
    inverse_weight: float = field(init=False, default=1.0)  # 1 / weight, for the shuffle
    # whether the model takes reasoning settings (the catalog says; unknown models are asked)
    reasoning: bool = True
    _urls: dict[str, URL] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inverse_weight = 1.0 / self.weight

    def url(self, operation: str) -> URL:
        """The upstream URL for an operation, parsed once."""
        found = self._urls.get(operation)
        if found is None:
            found = URL(self.provider.url(operation, self.upstream_model), encoded=True)
            self._urls[operation] = found
        return found

    @property
    def key(self) -> str:
        """A name for this deployment that is the same in every gateway process."""
        return f"{self.provider.name}/{self.model}/{self.upstream_model}"

    def __repr__(self) -> str:
        return f"<Deployment {self.model} via {self.provider.name} as {self.upstream_model}>"


@dataclass(slots=True)
class ModelTable:
    deployments: dict[str, list[Deployment]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        catalog: Catalog,
        providers: dict[str, Provider],
        transports: dict[str, Transport],
    ) -> ModelTable:
        table = cls()

        def add(
            model: str, provider: Provider, upstream: str, weight: float = 1.0, priority: int = 0
        ) -> None:
            dep = Deployment(model, provider, transports[provider.name], upstream, weight, priority)
            info = catalog.get(model)
            dep.reasoning = info is None or "reasoning" in info.supported_parameters
            if info is not None:
                dep.price = info.pricing.input + info.pricing.output
            table.deployments.setdefault(model, []).append(dep)

        for provider in providers.values():
            if provider.catalog_models:
                vendor = provider.catalog_vendor
                for info in catalog.served_by(vendor):
                    add(info.id, provider, info.vendors[vendor])
            listed = provider.config.models
            pairs = listed.items() if isinstance(listed, dict) else ((m, m) for m in listed)
            for public, upstream in pairs:
                if not any(d.provider is provider for d in table.deployments.get(public, ())):
                    add(public, provider, upstream)

        for model, cfg in settings.models.items():
            table.deployments[model] = []
            known = catalog.get(model)
            for dep in cfg.deployments:
                provider = providers[dep.provider]
                named = dep.model or (known.vendors.get(provider.catalog_vendor) if known else None)
                add(model, provider, named or model, dep.weight, dep.priority)
            for alias in cfg.aliases:
                table.aliases[alias] = model

        for info in catalog.models.values():
            if info.id in table.deployments:
                for alias in info.aliases:
                    table.aliases.setdefault(alias, info.id)
        table.aliases.update(settings.aliases)
        return table

    def canonical(self, name: str) -> str | None:
        """The public id a name stands for (itself or an alias's target), if served."""
        if name in self.deployments:
            return name
        target = self.aliases.get(name)
        return target if target in self.deployments else None
