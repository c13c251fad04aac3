"""How to order the healthy deployments of one priority tier: one function per strategy.

Every strategy returns a full order (not just a winner), so failover follows it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crossway.routing.deployments import Deployment

Strategy = Callable[[list["Deployment"], random.Random], list["Deployment"]]


def weighted(group: list[Deployment], rnd: random.Random) -> list[Deployment]:
    """A random order shaped by the weights (Efraimidis-Spirakis: sort by u^(1/w))."""
    draw = rnd.random
    return sorted(group, key=lambda d: draw() ** d.inverse_weight, reverse=True)


def least_busy(group: list[Deployment], rnd: random.Random) -> list[Deployment]:
    """Fewest requests in flight first; ties in weighted random order."""
    draw = rnd.random
    return sorted(group, key=lambda d: (d.breaker.in_flight, -(draw() ** d.inverse_weight)))


def lowest_latency(group: list[Deployment], rnd: random.Random) -> list[Deployment]:
    """The lowest moving-average latency first; one never measured goes first, to be."""
    draw = rnd.random
    return sorted(group, key=lambda d: (d.breaker.latency_ms or 0.0, -(draw() ** d.inverse_weight)))


def lowest_cost(group: list[Deployment], rnd: random.Random) -> list[Deployment]:
    """The cheapest per the catalog's prices first; unknown prices count as free."""
    draw = rnd.random
    return sorted(group, key=lambda d: (d.price, -(draw() ** d.inverse_weight)))


STRATEGIES: dict[str, Strategy] = {
    "weighted": weighted,
    "least-busy": least_busy,
    "lowest-latency": lowest_latency,
    "lowest-cost": lowest_cost,
}
