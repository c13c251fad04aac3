"""Pass-through to an OpenAI-format upstream: send, fail over, relay bytes, capture usage.

When the caller's wire format is the upstream's, the body goes through as parsed JSON with only
the model rewritten, and the answer comes back byte for byte. Streams are forwarded event by
event as they arrive; the only event ever touched is the usage one (see `StreamUsage`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from crossway.api.access import allow_route
from crossway.api.disconnect import ClientWatch
from crossway.api.http import JSON, Headers, Request
from crossway.dialects import openai as openai_dialect
from crossway.dialects.openai import StreamUsage
from crossway.dialects.sse import EventCutter, last_event
from crossway.errors import GatewayError, UpstreamError
from crossway.limits import ratelimit_headers
from crossway.providers.errors import upstream_error
from crossway.providers.http1 import ConnectionBroken, ReadTimeout, Response
from crossway.routing import Deployment, Route
from crossway.usage import UsageEvent

_EVENT_STREAM = b"text/event-stream"


def _usage_event(req: Request, endpoint: str, route: Route, stream: bool) -> UsageEvent:
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


async def _send(
    req: Request,
    route: Route,
    operation: str,
    payload: dict[str, Any],
    event: UsageEvent,
    add_stream_usage: bool,
) -> tuple[Response, Deployment]:
    """Try the route's deployments in order until one answers without a server-side failure."""
    health = req.services.health
    last: GatewayError | None = None
    candidates = route.candidates
    for attempt, dep in enumerate(candidates, 1):
        provider = dep.provider
        event.attempts = attempt
        event.provider, event.vendor, event.upstream_model = (
            provider.name,
            provider.vendor,
            dep.upstream_model,
        )
        payload["model"] = dep.upstream_model
        if add_stream_usage:
            if provider.stream_usage:
                options = payload.get("stream_options")
                payload["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
            else:
                payload.pop("stream_options", None)
        try:
            resp = await dep.transport.post(dep.url(operation), orjson.dumps(payload))
        except UpstreamError as exc:
            health.failure(dep)
            last = exc
            continue
        status = resp.status
        if status < 400:
            health.success(dep)
            return resp, dep
        try:
            body = await resp.read()
        except (ConnectionBroken, ReadTimeout):
            resp.close()
            body = b""
        event.upstream_request_id = resp.headers.get(provider.request_id_header)
        error = upstream_error(provider, status, body, resp.headers)
        if (status >= 500 or status == 429) and attempt < len(candidates):
            health.failure(dep)
            last = error
            continue
        if status >= 500:
            health.failure(dep)
        raise error
    assert last is not None
    raise last


def _response_headers(req: Request, resp: Response, dep: Deployment) -> Headers:
    headers = [
        (b"x-crossway-provider", dep.provider.name.encode()),
        (b"x-crossway-model", dep.model.encode()),
    ]
    upstream_id = resp.headers.get(dep.provider.request_id_header)
    if upstream_id:
        headers.append((b"x-upstream-request-id", upstream_id.encode("latin-1")))
    if req.admitted is not None:
        quota, admission = req.admitted
        headers.extend(
            (k.encode(), v.encode()) for k, v in ratelimit_headers(admission, quota).items()
        )
    return headers


async def _admit(req: Request, route: Route) -> Route:
    """The key's model and vendor rules, then its limits and budgets (402/403/429)."""
    principal = req.principal
    assert principal is not None
    if principal.key is None:
        return route
    route = allow_route(principal, route)
    req.admitted = await req.services.limits.admit(principal.key, req.request_id)
    return route


def _finish(req: Request, event: UsageEvent, status: int, error: GatewayError | None) -> None:
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
    _finish(req, event, error.status, error)


async def relay_json(
    req: Request, endpoint: str, operation: str, route: Route, payload: dict[str, Any]
) -> None:
    """A non-streaming request: the upstream's JSON answer goes back as it came."""
    event = _usage_event(req, endpoint, route, stream=False)
    watch = ClientWatch(req.receive)
    try:
        route = await _admit(req, route)
        resp, dep = await _send(req, route, operation, payload, event, add_stream_usage=False)
        try:
            raw = await resp.read()
        except (ConnectionBroken, ReadTimeout) as exc:
            raise UpstreamError(
                f"upstream {dep.provider.name} ({dep.provider.vendor}) failed while answering: "
                f"{type(exc).__name__}",
                vendor=dep.provider.vendor,
            ) from None
        finally:
            resp.release()  # drops the connection if the answer was not read to its end
        event.upstream_request_id = resp.headers.get(dep.provider.request_id_header)
        try:
            event.usage = openai_dialect.usage_from(orjson.loads(raw))
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"upstream {dep.provider.name} ({dep.provider.vendor}) answered with a body that "
                "is not JSON",
                vendor=dep.provider.vendor,
            ) from None
        await req.respond(
            resp.status,
            raw,
            _response_headers(req, resp, dep),
            content_type=resp.headers.get("content-type", "").encode() or JSON,
        )
    except GatewayError as err:
        _finish(req, event, err.status, err)
        raise
    except asyncio.CancelledError:
        if not watch.client_left():
            raise
        _finish(req, event, 499, _client_closed())
        return
    finally:
        watch.stop()
    _finish(req, event, resp.status, None)


def _client_closed() -> GatewayError:
    return GatewayError("the client closed the connection", kind="client_closed")


async def relay_stream(
    req: Request, endpoint: str, route: Route, payload: dict[str, Any], client_wants_usage: bool
) -> None:
    """A streaming request: forward events as they arrive; cancel upstream if the client goes."""
    event = _usage_event(req, endpoint, route, stream=True)
    usage = StreamUsage(strip=not client_wants_usage)
    status, error = 200, None
    resp: Response | None = None
    watch = ClientWatch(req.receive)
    try:
        route = await _admit(req, route)
        resp, dep = await _send(
            req, route, "chat", payload, event, add_stream_usage=not client_wants_usage
        )
        event.upstream_request_id = resp.headers.get(dep.provider.request_id_header)
        headers = req.base_headers()
        headers += [
            (b"content-type", resp.headers.get("content-type", "").encode() or _EVENT_STREAM),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        headers += _response_headers(req, resp, dep)
        await req.start(200, headers)
        error, reported = await _pump(req, resp, dep, usage, event)
        if error is not None:
            status = error.status
            if not reported:
                await req.send(
                    {
                        "type": "http.response.body",
                        "body": openai_dialect.stream_error_event(error),
                        "more_body": True,
                    }
                )
        await req.send({"type": "http.response.body", "body": b"", "more_body": False})
    except GatewayError as err:  # before the stream started: a plain error answer
        status, error = err.status, err
        raise
    except asyncio.CancelledError:
        if not watch.client_left():
            raise
        status, error = 499, _client_closed()
    finally:
        watch.stop()
        if resp is not None:
            resp.close()  # on early exit this drops the upstream connection, which cancels it
        event.usage = usage.usage
        _finish(req, event, status, error)


async def _pump(
    req: Request,
    resp: Response,
    dep: Deployment,
    usage: StreamUsage,
    event: UsageEvent,
) -> tuple[GatewayError | None, bool]:
    """Forward upstream bytes. If the stream broke: the error, and whether upstream said so."""
    send = req.send
    cutter = EventCutter()
    first = True
    last = b""  # the last bytes sent: its final event tells how the stream ended
    try:
        async for chunk in resp.chunks():
            out = usage.process(cutter.feed(chunk))
            if not out:
                continue
            if first:
                event.ttft_ms = (time.perf_counter() - req.started) * 1000
                first = False
            last = out
            await send({"type": "http.response.body", "body": out, "more_body": True})
    except (ConnectionBroken, ReadTimeout) as exc:
        return UpstreamError(
            f"upstream {dep.provider.name} ({dep.provider.vendor}) stream broke: "
            f"{type(exc).__name__}",
            vendor=dep.provider.vendor,
        ), False
    rest = cutter.finish()
    if rest:  # a last event without its blank line
        last = usage.process(rest)
        await send({"type": "http.response.body", "body": last, "more_body": True})
    final_event = last_event(last)
    if b"[DONE]" in final_event:
        return None, False
    if b'"error"' in final_event:  # the upstream reported its own in-stream error, already relayed
        return UpstreamError(
            f"upstream {dep.provider.name} ({dep.provider.vendor}) reported an error in the stream",
            vendor=dep.provider.vendor,
            kind="upstream_stream_error",
        ), True
    return UpstreamError(
        f"upstream {dep.provider.name} ({dep.provider.vendor}) ended the stream before completion",
        vendor=dep.provider.vendor,
        kind="upstream_incomplete",
    ), False
