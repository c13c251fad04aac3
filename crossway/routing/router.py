"""Model name + vendor pin -> the deployments to try, best first."""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from crossway.errors import InvalidRequest, NotFound
from crossway.routing.deployments import Deployment, ModelTable
from crossway.routing.health import Health
from crossway.routing.strategies import STRATEGIES, Strategy

AUTO = "auto"


@dataclass(slots=True)
class Route:
    requested: str  # what the caller asked for
    model: str  # the public id it resolved to
    candidates: list[Deployment]  # in the order to try them
    # models to try, in order, when every deployment of this one failed
    fallbacks: list[str] = field(default_factory=list)
    pin: str | None = None  # the vendor pin, which fallbacks honour too


class Router:
    def __init__(
        self,
        table: ModelTable,
        vendors: Iterable[str],
        provider_names: Iterable[str],
        health: Health | None = None,
        strategy: str = "weighted",
        fallbacks_for: Callable[[str], list[str]] = lambda model: [],
    ):
        self.table = table
        self.vendors = frozenset(vendors)  # every registered vendor type
        self.pins = self.vendors | frozenset(provider_names)
        self.health = health or Health()
        self.strategy: Strategy = STRATEGIES[strategy]
        self.fallbacks_for = fallbacks_for  # the configured fallback models of a model
        self._random = random.Random()

    def resolve(
        self, requested: str, pin: str | None = None, fallbacks: list[str] | None = None
    ) -> Route:
        """The deployments of a model, best first, and the fallback models after it: the
        caller's own list (`models` in the body), then the configured ones."""
        route = self._resolve(requested, pin)
        chain = [*(fallbacks or ()), *self.fallbacks_for(route.model)]
        seen = {route.model, requested}
        for model in chain:
            if model not in seen:
                seen.add(model)
                route.fallbacks.append(model)
        return route

    def reorder(self, route: Route) -> None:
        """Order the route's deployments again, by health as it is now (before a retry)."""
        route.candidates = self._order(route.candidates)

    def _resolve(self, requested: str, pin: str | None = None) -> Route:
        if pin is not None:
            pin = pin.strip()
            if pin == "" or pin.lower() == AUTO:
                pin = None
            elif pin not in self.pins:
                raise InvalidRequest(
                    f"unknown vendor {pin!r}; known vendors: auto, " + ", ".join(sorted(self.pins)),
                    param="vendor",
                    code="unknown_vendor",
                )
        model = self.table.canonical(requested)
        if model is None and "/" in requested:
            prefix, rest = requested.split("/", 1)
            if prefix in self.pins:
                if pin is not None and pin != prefix:
                    raise InvalidRequest(
                        f"the model name pins vendor {prefix!r} but the vendor header says {pin!r}",
                        param="model",
                        code="vendor_conflict",
                    )
                pin = prefix
                model = self.table.canonical(rest)
                requested_name = rest
            else:
                requested_name = requested
        else:
            requested_name = requested
        if model is None:
            raise self._unknown_model(requested_name)
        deployments = self.table.deployments[model]
        if pin is not None:
            deployments = [d for d in deployments if d.provider.answers_to(pin)]
            if not deployments:
                serving = sorted({d.provider.name for d in self.table.deployments[model]})
                raise InvalidRequest(
                    f"vendor {pin!r} does not serve model {model!r}; it is served by: "
                    + ", ".join(serving),
                    param="vendor",
                    code="model_not_served_by_vendor",
                )
        return Route(requested, model, self._order(deployments), pin=pin)

    def _order(self, deployments: list[Deployment]) -> list[Deployment]:
        """Healthy deployments, lowest priority tier first, each tier by the strategy; then
        the ones whose breaker is open, soonest back first, as a last resort."""
        available = self.health.available
        now = self.health.clock()
        if len(deployments) == 1:
            available(deployments[0], now)  # moves a rested breaker to half-open
            return deployments
        healthy: list[Deployment] = []
        resting: list[Deployment] = []
        tiers: dict[int, list[Deployment]] = {}
        for d in deployments:  # one pass; a closed breaker needs no call
            if d.breaker.state == "closed" or available(d, now):
                healthy.append(d)
                tiers.setdefault(d.priority, []).append(d)
            else:
                resting.append(d)
        strategy, rnd = self.strategy, self._random
        if len(tiers) == 1:
            ordered = strategy(healthy, rnd) if len(healthy) > 1 else healthy
        else:
            ordered = []
            for priority in sorted(tiers):
                group = tiers[priority]
                ordered.extend(strategy(group, rnd) if len(group) > 1 else group)
        if resting:
            resting.sort(key=_back_at)
            ordered.extend(resting)
        return ordered

    def _unknown_model(self, requested: str) -> NotFound:
        names = sorted(self.table.deployments)
        close = difflib.get_close_matches(requested, names + list(self.table.aliases), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        if names:
            shown = ", ".join(names[:20]) + (
                f", ... ({len(names)} in all)" if len(names) > 20 else ""
            )
            listing = f" Models served here: {shown}."
        else:
            listing = " No models are configured: set a provider key or a config file."
        return NotFound(
            f"model {requested!r} is not served here.{hint}{listing} GET /v1/models lists them.",
            param="model",
            code="model_not_found",
        )


def _back_at(dep: Deployment) -> float:
    return dep.breaker.open_until
