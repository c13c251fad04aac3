"""Model name + vendor pin -> the deployments to try, best first."""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from crossway.errors import InvalidRequest, NotFound
from crossway.routing.deployments import Deployment, ModelTable

AUTO = "auto"


@dataclass(slots=True)
class Route:
    requested: str  # what the caller asked for
    model: str  # the public id it resolved to
    candidates: list[Deployment]  # in the order to try them


class Router:
    def __init__(self, table: ModelTable, vendors: Iterable[str], provider_names: Iterable[str]):
        self.table = table
        self.vendors = frozenset(vendors)  # every registered vendor type
        self.pins = self.vendors | frozenset(provider_names)
        self._random = random.Random()

    def resolve(self, requested: str, pin: str | None = None) -> Route:
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
            deployments = [
                d for d in deployments if d.provider.vendor == pin or d.provider.name == pin
            ]
            if not deployments:
                serving = sorted({d.provider.name for d in self.table.deployments[model]})
                raise InvalidRequest(
                    f"vendor {pin!r} does not serve model {model!r}; it is served by: "
                    + ", ".join(serving),
                    param="vendor",
                    code="model_not_served_by_vendor",
                )
        return Route(requested, model, self._order(deployments))

    def _order(self, deployments: list[Deployment]) -> list[Deployment]:
        if len(deployments) == 1:
            return deployments
        now = time.monotonic()
        healthy = [d for d in deployments if d.healthy(now)]
        resting = [d for d in deployments if not d.healthy(now)]
        ordered: list[Deployment] = []
        for priority in sorted({d.priority for d in healthy}):
            ordered.extend(self._weighted_shuffle([d for d in healthy if d.priority == priority]))
        # resting deployments are a last resort, soonest back first
        ordered.extend(sorted(resting, key=lambda d: d.cooldown_until))
        return ordered

    def _weighted_shuffle(self, group: list[Deployment]) -> list[Deployment]:
        # Efraimidis-Spirakis: sort by u^(1/w), a weighted order in one pass
        if len(group) == 1:
            return group
        rnd = self._random.random
        return sorted(group, key=lambda d: rnd() ** (1.0 / d.weight), reverse=True)

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
