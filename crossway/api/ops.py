"""Operations endpoints: liveness and readiness for orchestrators."""

from __future__ import annotations

import orjson

from crossway.api.http import Request
from crossway.api.routes import Route


async def live(req: Request) -> None:
    await req.respond(200, b'{"status":"ok"}')


async def ready(req: Request) -> None:
    models = len(req.services.table.deployments)
    await req.respond(200, orjson.dumps({"status": "ready", "models": models}))


ROUTES = [
    Route("GET", "/health/live", live, auth=False),
    Route("GET", "/health/ready", ready, auth=False),
]
