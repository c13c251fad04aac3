"""Answering one request: admit it, send it (`attempts.send_upstream`: deployments, retries,
fallbacks), answer in the caller's wire format (`relay_json`; streams are in
`crossway.api.streaming`), and account for it (`finish`: the usage event, the key's limits).
"""

from __future__ import annotations

import asyncio
import time

from crossway.api.access import allow_route
from crossway.api.attempts import send_upstream
from crossway.api.disconnect import ClientWatch
from crossway.api.exchange import Exchange
from crossway.api.http import JSON, Headers, Request, head_line
from crossway.errors import GatewayError
from crossway.limits.base import ratelimit_head_lines
from crossway.providers.http1 import Response
from crossway.routing import Deployment, Route
from crossway.usage import UsageEvent


def usage_event(req: Request, endpoint: str, route: Route, stream: bool) -> UsageEvent:
    assert req.principal is not None
    return UsageEvent(
        request_id=req.request_id,
        started_at=req.wall_started,
        endpoint=endpoint,
        principal=req.principal.id,
        stream=stream,
        model_requested=route.requested,
        model=route.model,
    )


_identities: dict[Deployment, bytes] = {}


def _identity(dep: Deployment) -> bytes:
    """The x-crossway-provider, -vendor and -model lines of a deployment, made once."""
    lines = _identities.get(dep)
    if lines is None:
        lines = _identities[dep] = (
            head_line(b"x-crossway-provider", dep.provider.name.encode())
            + head_line(b"x-crossway-vendor", dep.provider.vendor.encode())
            + head_line(b"x-crossway-model", dep.model.encode())
        )
    return lines


def response_head(
    req: Request, resp: Response, dep: Deployment, attempts: int
) -> tuple[Headers, bytes]:
    """Which deployment answered, after how many attempts, and the key's limits: as headers
    (the upstream's own request id, which is not ours to vouch for) and as header lines
    Crossway makes itself (`Request.start`)."""
    headers: Headers = []
    upstream_id = resp.headers.get(dep.provider.request_id_header)
    if upstream_id:
        headers.append((b"x-upstream-request-id", upstream_id.encode("latin-1")))
    lines = _identity(dep) + _ATTEMPTS % attempts
    if req.admitted is not None:
        quota, admission = req.admitted
        lines += ratelimit_head_lines(admission, quota)
    return headers, lines


_ATTEMPTS = b"x-crossway-attempts: %d\r\n"


async def admit(req: Request, route: Route) -> Route:
    """The key's model and vendor rules, then its limits and budgets (402/403/429)."""
    principal = req.principal
    assert principal is not None
    key = principal.key
    if key is None:
        return route
    if key.models or key.vendors:
        route = allow_route(principal, route)
    limits = req.services.limits
    quota = limits.quota(key)
    if quota is not None:
        now_ms = int(time.time() * 1000)
        admission = limits.admit_here(key.id, quota, req.request_id, now_ms)
        if admission is None:
            admission = await limits.admit(key.id, quota, req.request_id, now_ms)
        req.admitted = quota, admission
    return route


def finish(req: Request, event: UsageEvent, status: int, error: GatewayError | None) -> None:
    event.status = status
    if error is not None:
        event.error_type = error.kind
    event.latency_ms = (time.perf_counter() - req.started) * 1000
    if event.usage is not None and event.model is not None:
        info = req.services.catalog.get(event.model)
        if info is not None:
            event.cost_usd = info.pricing.cost(event.usage)
    req.services.usage.record(event)
    req.usage_recorded = True
    if req.admitted is not None:  # give the slot back; charge tokens and cost
        usage = event.usage
        req.services.limits.settle(
            event.principal,
            req.request_id,
            usage.total_tokens if usage else 0,
            event.cost_usd or 0.0,
            int(event.started_at * 1000 + event.latency_ms),  # now, without asking the clock
        )
        req.admitted = None


def record_refusal(req: Request, endpoint: str, error: GatewayError) -> None:
    """A request refused before it reached an upstream still gets its usage event."""
    principal = req.principal.id if req.principal is not None else "anonymous"
    event = UsageEvent(
        request_id=req.request_id,
        started_at=req.wall_started,
        endpoint=endpoint,
        principal=principal,
    )
    finish(req, event, error.status, error)


async def relay_json(
    req: Request, endpoint: str, operation: str, route: Route, exchange: Exchange
) -> None:
    """A non-streaming request: the upstream's answer, in the caller's wire format."""
    event = usage_event(req, endpoint, route, stream=False)
    watch = ClientWatch(req.receive)
    dep: Deployment | None = None
    try:
        route = await admit(req, route)
        sent = await send_upstream(req, route, operation, exchange, event)
        dep, resp = sent.dep, sent.resp
        event.usage = sent.usage
        content_type = JSON
        if not exchange.translated(dep):
            content_type = resp.headers.get("content-type", "").encode() or JSON
        headers, lines = response_head(req, resp, dep, event.attempts)
        await req.respond(resp.status, sent.body, headers, content_type, lines)
    except GatewayError as err:
        finish(req, event, err.status, err)
        raise
    except asyncio.CancelledError:
        if not watch.client_left():
            # the server stopping cut it short: on the record all the same
            finish(req, event, 503, cut_short())
            raise
        finish(req, event, 499, client_closed())
        return
    finally:
        watch.stop()
        if dep is not None:
            req.services.health.release(dep)
    finish(req, event, 200, None)


def client_closed() -> GatewayError:
    return GatewayError("the client closed the connection", kind="client_closed")


def cut_short() -> GatewayError:
    """A request cancelled by a stopping gateway (its shutdown timeout passed)."""
    return GatewayError("the gateway stopped before the answer was complete", kind="cut_short")
