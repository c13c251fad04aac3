"""Streaming answers: relayed byte for byte, or translated event by event.

Same wire format: upstream events are forwarded as they arrive, cut only at event ends; the
only event ever touched is OpenAI's usage chunk when Crossway, not the caller, asked for it.
Other wire format: each event is decoded into canonical stream events and encoded for the
caller at once, so a translated stream is as incremental as the upstream's.
If the upstream breaks off after the stream began, the caller gets its dialect's in-stream
error event; a caller that goes away cancels the upstream request.
"""

from __future__ import annotations

import asyncio
import time

from crossway.api.attempts import send_upstream
from crossway.api.disconnect import ClientWatch
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.relay import (
    admit,
    client_closed,
    cut_short,
    finish,
    response_head,
    usage_event,
)
from crossway.dialects.registry import DIALECTS
from crossway.dialects.sse import EventCutter, last_event
from crossway.dialects.translate import StreamTranslator
from crossway.errors import GatewayError, UpstreamError
from crossway.ir import Usage
from crossway.providers.http1 import ConnectionBroken, ReadTimeout, Response
from crossway.routing import Deployment, Route
from crossway.usage import UsageEvent

_EVENT_STREAM = b"text/event-stream"


async def relay_stream(
    req: Request,
    endpoint: str,
    route: Route,
    exchange: Exchange,
    operation: str = "chat_stream",
    raw_types: tuple[str, ...] = (),
    billed: Usage | None = None,
) -> None:
    """A streamed answer. With `raw_types`, one that is not events at all (speech audio):
    relayed as it arrives with the upstream's content type, which must start with one of
    them; `billed` is what such an answer bills, known from the request (speech: characters).
    """
    event = usage_event(req, endpoint, route, stream=True)
    status, error = 200, None
    resp: Response | None = None
    dep: Deployment | None = None
    watch = ClientWatch(req.receive)
    client = exchange.client
    try:
        route = await admit(req, route)
        # the first bytes are awaited before answering: until then a failure can fail over
        sent = await send_upstream(req, route, operation, exchange, event, stream=True)
        resp, dep = sent.resp, sent.dep
        if raw_types:
            raw_type = resp.headers.get("content-type", "")
            if not raw_type.lower().startswith(raw_types):
                raise UpstreamError(
                    f"upstream {dep.provider.name} ({dep.provider.vendor}) was asked for "
                    f"{raw_types[0].rstrip('/')} and answered with "
                    f"{raw_type or 'no content type'}",
                    vendor=dep.provider.vendor,
                )
            event.usage = billed
            headers = req.base_headers()
            headers.append((b"content-type", raw_type.encode()))
            more, lines = response_head(req, resp, dep, event.attempts)
            await req.start(200, headers + more, lines)
            error = await _pump_bytes(req, resp, dep, event)
            if error is not None:
                status = error.status
            await req.send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        translated = exchange.stream_translated(dep)
        content_type = b"application/json" if exchange.json_array else _EVENT_STREAM
        if not translated:
            content_type = resp.headers.get("content-type", "").encode() or _EVENT_STREAM
        headers = req.base_headers()
        headers += [
            (b"content-type", content_type),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        more, lines = response_head(req, resp, dep, event.attempts)
        await req.start(200, headers + more, lines)
        if translated:
            error = await _pump_translated(req, resp, dep, exchange, event)
        else:
            error, reported = await _pump(req, resp, dep, exchange, event)
            if error is not None and not reported:
                await _send_body(req, client.stream_error_event(error))
        if error is not None:
            status = error.status
        await req.send({"type": "http.response.body", "body": b"", "more_body": False})
    except GatewayError as err:  # before the stream started: a plain error answer
        status, error = err.status, err
        raise
    except asyncio.CancelledError:
        if not watch.client_left():
            status, error = 503, cut_short()  # the server stopping cut it short
            raise
        status, error = 499, client_closed()
    finally:
        watch.stop()
        if resp is not None:
            resp.close()  # on early exit this drops the upstream connection, which cancels it
        if dep is not None:
            req.services.health.release(dep)
        finish(req, event, status, error)


async def _send_body(req: Request, body: bytes) -> None:
    await req.send({"type": "http.response.body", "body": body, "more_body": True})


def _broke(dep: Deployment, exc: Exception) -> UpstreamError:
    return UpstreamError(
        f"upstream {dep.provider.name} ({dep.provider.vendor}) stream broke: {type(exc).__name__}",
        vendor=dep.provider.vendor,
    )


def _incomplete(dep: Deployment) -> UpstreamError:
    return UpstreamError(
        f"upstream {dep.provider.name} ({dep.provider.vendor}) ended the stream before completion",
        vendor=dep.provider.vendor,
        kind="upstream_incomplete",
    )


async def _pump_bytes(
    req: Request, resp: Response, dep: Deployment, event: UsageEvent
) -> GatewayError | None:
    """Forward bytes as they come; a break only shortens the body (audio has no in-band
    error)."""
    first = True
    try:
        async for chunk in resp.chunks():
            if first:
                event.ttft_ms = (time.perf_counter() - req.started) * 1000
                first = False
            await _send_body(req, chunk)
    except (ConnectionBroken, ReadTimeout) as exc:
        provider = dep.provider
        return GatewayError(
            f"upstream {provider.name} ({provider.vendor}) broke off: {type(exc).__name__}",
            status=502,
            kind="upstream_error",
        )
    return None


async def _pump(
    req: Request, resp: Response, dep: Deployment, exchange: Exchange, event: UsageEvent
) -> tuple[GatewayError | None, bool]:
    """Forward upstream bytes. If the stream broke: the error, and whether upstream said so."""
    client = exchange.client
    usage = client.passthrough_usage(exchange.stream_options)
    send = req.send
    cutter = EventCutter()
    first = True
    last = b""  # the last bytes sent: its final event tells how the stream ended
    try:
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
            return _broke(dep, exc), False
        rest = cutter.finish()
        if rest:  # a last event without its blank line
            last = usage.process(rest)
            await _send_body(req, last)
    finally:
        event.usage = usage.usage
    outcome = client.stream_outcome(last_event(last))
    if outcome == "done":
        return None, False
    if outcome == "error":  # the upstream reported its own in-stream error, already relayed
        return UpstreamError(
            f"upstream {dep.provider.name} ({dep.provider.vendor}) reported an error in the stream",
            vendor=dep.provider.vendor,
            kind="upstream_stream_error",
        ), True
    return _incomplete(dep), False


async def _pump_translated(
    req: Request, resp: Response, dep: Deployment, exchange: Exchange, event: UsageEvent
) -> GatewayError | None:
    """Decode the upstream's events, encode them for the caller; the error, if it failed."""
    upstream = DIALECTS[dep.provider.dialect]
    request = exchange.request()
    translator = StreamTranslator(
        upstream,
        exchange.client,
        request.model or dep.upstream_model,
        exchange.stream_options,
        dep.provider.redact,
        upstream.renamed_tools(request),
    )
    cutter = EventCutter()
    first = True
    try:
        try:
            async for chunk in resp.chunks():
                out = translator.feed(cutter.feed(chunk))
                if out:
                    if first:
                        event.ttft_ms = (time.perf_counter() - req.started) * 1000
                        first = False
                    await _send_body(req, out)
            out = translator.feed(cutter.finish()) + translator.end()
        except (ConnectionBroken, ReadTimeout) as exc:
            out = translator.fail(_broke(dep, exc))
        if not translator.finished and translator.failure is None:
            out += translator.fail(_incomplete(dep))
        if out:
            await _send_body(req, out)
    finally:
        event.usage = translator.usage
    return translator.failure
