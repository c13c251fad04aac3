"""The ASGI application: find the route, authenticate, run the handler, render errors.

Every response carries `x-request-id`. Errors are rendered by the route's own dialect, and an
unexpected exception becomes a 500 with the request id, never a stack trace.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable

from crossway.api import admin, media, ops, uploads
from crossway.api import anthropic as anthropic_door
from crossway.api import gemini as gemini_door
from crossway.api import openai as openai_door
from crossway.api.auth import token_from
from crossway.api.http import Receive, Request, Scope, Send
from crossway.api.relay import record_refusal
from crossway.api.routes import Route
from crossway.api.services import Services
from crossway.dialects import openai as openai_dialect
from crossway.errors import GatewayError, InvalidRequest, NotFound

log = logging.getLogger("crossway")

Hook = Callable[[], Awaitable[None]]


def _aliases(routes: Iterable[Route]) -> list[Route]:
    """OpenAI-compatible clients configured without `/v1` reach the same handlers."""
    out = list(routes)
    out.extend(dataclasses.replace(r, path=r.path[3:]) for r in routes if r.path.startswith("/v1/"))
    return out


def new_request_id() -> str:
    """ "req_", the time in microseconds (13 hex digits), 6 random bytes: unique across
    processes, and in time order, so the ledger's primary key grows at its end (random ids
    cost Postgres about 40% more CPU per row written: docs/performance.md)."""
    return f"req_{time.time_ns() // 1000:013x}{os.urandom(6).hex()}"


class CrosswayApp:
    def __init__(
        self, services: Services, on_startup: Iterable[Hook] = (), on_shutdown: Iterable[Hook] = ()
    ) -> None:
        self.services = services
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.exact: dict[str, dict[str, Route]] = {}
        self.prefixed: list[tuple[str, dict[str, Route]]] = []
        doors = [
            *openai_door.ROUTES,
            *media.ROUTES,
            *uploads.ROUTES,
            *anthropic_door.ROUTES,
            *admin.KEY_ROUTES,
        ]
        routes = [*_aliases(doors), *gemini_door.ROUTES, *admin.ROUTES, *ops.ROUTES]
        for route in routes:
            if route.path.endswith("/"):
                table = next((t for p, t in self.prefixed if p == route.path), None)
                if table is None:
                    table = {}
                    self.prefixed.append((route.path, table))
            else:
                table = self.exact.setdefault(route.path, {})
            table[route.method] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _find(self, path: str) -> dict[str, Route] | None:
        table = self.exact.get(path)
        if table is not None:
            return table
        for prefix, table in self.prefixed:
            if path.startswith(prefix) and len(path) > len(prefix):
                return table
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request(scope, receive, send, self.services, new_request_id())
        render: Callable[[GatewayError, str | None], bytes] = openai_dialect.error_body
        route: Route | None = None
        try:
            methods = self._find(scope["path"])
            if methods is None:
                raise NotFound(
                    f"no such endpoint: {scope['method']} {scope['path']}",
                    code="unknown_url",
                    retryable=False,
                )
            route = methods.get(scope["method"])
            if route is None:
                raise InvalidRequest(
                    f"method {scope['method']} is not allowed on {scope['path']}; use "
                    + " or ".join(sorted(methods)),
                    status=405,
                    code="method_not_allowed",
                    retryable=False,
                )
            render = route.render_error
            req.id_headers = route.id_headers
            if route.auth:
                token = token_from(
                    req.header(b"authorization"),
                    req.header(b"api-key")
                    or req.header(b"x-api-key")
                    or req.header(b"x-goog-api-key"),
                )
                if token is None and route.query_key:
                    token = req.query.get("key") or None
                req.principal = await self.services.auth.authenticate(token)
            await route.handler(req)
        except GatewayError as err:
            self._refused(req, route, err)
            if route is not None and route.map_status is not None:
                err.status = route.map_status(err.status)
            if not req.response_started:
                await req.respond_error(err, render)
        except Exception:
            log.exception("unexpected error in request %s", req.request_id)
            internal = GatewayError(f"internal error; request id {req.request_id}")
            self._refused(req, route, internal)
            if not req.response_started:
                await req.respond_error(internal, render)

    @staticmethod
    def _refused(req: Request, route: Route | None, err: GatewayError) -> None:
        if route is not None and route.metered and not req.usage_recorded:
            record_refusal(req, route.metered, err)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown step failed")
                await send({"type": "lifespan.shutdown.complete"})
                return
