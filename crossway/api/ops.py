"""Operations endpoints: liveness and readiness for orchestrators, deployment health."""

from __future__ import annotations

from typing import Any

import orjson

from crossway.api.admin import require_master
from crossway.api.http import Request
from crossway.api.routes import Route


async def live(req: Request) -> None:
    """The process answers: nothing else is checked (restart it if this fails)."""
    await req.respond(200, b'{"status":"ok"}')


async def ready(req: Request) -> None:
    """Ready for traffic: models are configured and at least one deployment of them is not
    held out by an open breaker. 503 otherwise, so a load balancer looks elsewhere."""
    services = req.services
    health = services.health
    now = health.clock()
    deployments = [d for group in services.table.deployments.values() for d in group]
    open_breakers = sum(
        1 for d in deployments if d.breaker.state == "open" and d.breaker.open_until > now
    )
    ok = bool(deployments) and open_breakers < len(deployments)
    body = {
        "status": "ready" if ok else "unavailable",
        "models": len(services.table.deployments),
        "deployments": len(deployments),
        "deployments_out": open_breakers,
    }
    await req.respond(200 if ok else 503, orjson.dumps(body))


async def deployments(req: Request) -> None:
    """`GET /admin/deployments`: every deployment, its breaker, latency and error rate."""
    require_master(req)
    services = req.services
    rows: list[dict[str, Any]] = []
    for model, group in sorted(services.table.deployments.items()):
        for dep in group:
            rows.append(
                {
                    "model": model,
                    "provider": dep.provider.name,
                    "vendor": dep.provider.vendor,
                    "upstream_model": dep.upstream_model,
                    "weight": dep.weight,
                    "priority": dep.priority,
                    **services.health.snapshot(dep),
                }
            )
    body = {"strategy": services.settings.routing.strategy, "data": rows}
    await req.respond(200, orjson.dumps(body))


ROUTES = [
    Route("GET", "/health/live", live, auth=False),
    Route("GET", "/health/ready", ready, auth=False),
    Route("GET", "/admin/deployments", deployments),
]
