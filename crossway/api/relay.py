"""Pass-through to an OpenAI-format upstream: send, fail over, relay bytes, capture usage.

When the caller's wire format is the upstream's, the body goes through as parsed JSON with only
the model rewritten, and the answer comes back byte for byte. Streams are forwarded event by
event as they arrive; the only event ever touched is the usage one (see `_StreamUsage`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from crossway.api.disconnect import ClientWatch
from crossway.api.http import JSON, Headers, Request
from crossway.dialects import openai as openai_dialect
from crossway.errors import GatewayError, UpstreamError
from crossway.ir import Usage
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
    return headers


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


def _last_boundary(data: bytes) -> int:
    """The end of the last complete SSE event in `data`, or -1."""
    cut = data.rfind(b"\n\n")
    end = cut + 2 if cut >= 0 else -1
    if b"\r" in data:
        crlf = data.rfind(b"\r\n\r\n")
        if crlf >= 0:
            end = max(end, crlf + 4)
        cr = data.rfind(b"\r\r")
        if cr >= 0:
            end = max(end, cr + 2)
    return end


def _event_data(raw_event: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") for line in raw_event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _null_usages(data: bytes) -> int:
    return data.count(b'"usage":null') + data.count(b'"usage": null')


class _StreamUsage:
    """Finds the usage chunk as events pass, and hides it if only Crossway asked for it.

    With `include_usage` set by Crossway, every chunk carries `"usage":null` and one last
    chunk carries the usage with `choices: []`; a client that did not ask sees neither.
    """

    __slots__ = ("strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None

    def process(self, out: bytes) -> bytes:
        mentions = out.count(b'"usage"')
        if not mentions:
            return out
        if mentions == _null_usages(out):
            return self._drop_nulls(out)
        # some event carries real usage: only that one is parsed, the rest stay bytes
        if b"\r" in out:
            out = out.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        kept = []
        for raw_event in out.split(b"\n\n"):
            mentions = raw_event.count(b'"usage"')
            if mentions and mentions != _null_usages(raw_event):
                kept_event = self._one(raw_event)
            else:
                kept_event = self._drop_nulls(raw_event)
            if kept_event is not None:
                kept.append(kept_event)
        return b"\n\n".join(kept)

    def _drop_nulls(self, out: bytes) -> bytes:
        if not self.strip:
            return out
        return out.replace(b',"usage":null', b"").replace(b', "usage": null', b"")

    def _one(self, raw_event: bytes) -> bytes | None:
        data = _event_data(raw_event)
        try:
            chunk = orjson.loads(data) if data is not None else None
        except orjson.JSONDecodeError:
            return raw_event  # not ours to judge; pass it on
        if not isinstance(chunk, dict):
            return raw_event
        usage = openai_dialect.usage_from(chunk)
        if usage is not None:
            self.usage = usage
        if not self.strip:
            return raw_event
        if usage is not None and chunk.get("choices") == []:
            return None
        if "usage" in chunk:
            del chunk["usage"]
            return b"data: " + orjson.dumps(chunk)
        return raw_event


async def relay_stream(
    req: Request, endpoint: str, route: Route, payload: dict[str, Any], client_wants_usage: bool
) -> None:
    """A streaming request: forward events as they arrive; cancel upstream if the client goes."""
    event = _usage_event(req, endpoint, route, stream=True)
    usage = _StreamUsage(strip=not client_wants_usage)
    status, error = 200, None
    resp: Response | None = None
    watch = ClientWatch(req.receive)
    try:
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
    usage: _StreamUsage,
    event: UsageEvent,
) -> tuple[GatewayError | None, bool]:
    """Forward upstream bytes. If the stream broke: the error, and whether upstream said so."""
    send = req.send
    pending = b""
    first = True
    last = b""  # the last bytes sent: its final event tells how the stream ended
    try:
        async for chunk in resp.chunks():
            data = pending + chunk if pending else chunk
            cut = _last_boundary(data)
            if cut < 0:
                pending = data
                continue
            out, pending = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
            out = usage.process(out)
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
    if pending.strip():  # a last event without its blank line
        out = usage.process(pending + b"\n\n")
        last = out
        await send({"type": "http.response.body", "body": out, "more_body": True})
    final_event = last.rstrip().rsplit(b"\n\n", 1)[-1]
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
