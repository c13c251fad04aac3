"""The attempt loop: deployments in order, retries with backoff, then fallback models.

For each model (the one asked for, then its fallbacks): every deployment in the router's
order; when all of them failed with a retryable error, all again after a backoff (at least
the upstream's `retry-after`), `routing.retries` times. A final error (a 4xx about the request
itself) ends the loop at once. Every outcome feeds the deployment's circuit breaker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

from crossway.api.access import allow_route
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied, UpstreamError
from crossway.ir import Usage
from crossway.providers.errors import upstream_error
from crossway.providers.http1 import ConnectionBroken, ReadTimeout, Response
from crossway.routing import Deployment, Route
from crossway.routing.retry import classify, retry_after_seconds
from crossway.usage import UsageEvent

_random = random.Random()


@dataclass(slots=True)
class Sent:
    """A good answer. Non-streaming: read whole and already in the caller's format (`body`,
    `usage`); streaming: its headers and first bytes in (`resp.chunks()` yields the rest)."""

    resp: Response
    dep: Deployment
    body: bytes = b""
    usage: Usage | None = None


@dataclass(slots=True)
class Miss:
    """An attempt that failed: the error, its kind (see `routing.retry`), the wait it asked."""

    error: GatewayError
    kind: str
    retry_after: float | None = None


def _routes(req: Request, route: Route) -> Iterator[Route]:
    """The route, then each fallback model's, skipping those not served here (or not by the
    pinned vendor) and those the caller's key may not use."""
    yield route
    principal = req.principal
    for model in route.fallbacks:
        try:
            fallback = req.services.router.resolve(model, route.pin)
            if principal is not None and principal.key is not None:
                fallback = allow_route(principal, fallback)
        except (NotFound, InvalidRequest, PermissionDenied):
            continue
        yield fallback


async def send_upstream(
    req: Request,
    route: Route,
    operation: str,
    exchange: Exchange,
    event: UsageEvent,
    stream: bool = False,
) -> Sent:
    """The first good answer. A stream is returned once its first bytes are in, so one that
    dies before its first byte still fails over; any other answer once it is read whole and
    understood, so a broken or malformed one fails over too. The caller must
    `health.release(sent.dep)` when it is done with the answer."""
    services = req.services
    policy = services.retry
    last: GatewayError | None = None
    for target in _routes(req, route):
        skip: set[int] = set()  # deployments not to try again for this model
        retry_after: float | None = None
        for retry in range(policy.retries + 1):
            if retry:
                wait = policy.backoff(retry, retry_after, _random)
                if wait is None:  # asked to wait longer than we would: go on to a fallback
                    break
                await asyncio.sleep(wait)
                services.router.reorder(target)
            retry_after = None
            tried = False
            for dep in target.candidates:
                if id(dep) in skip:
                    continue
                tried = True
                outcome = await _attempt(req, dep, operation, exchange, event, stream)
                if not isinstance(outcome, Miss):
                    return outcome
                last = outcome.error
                if outcome.kind == "final":
                    raise last
                asked = outcome.retry_after
                if outcome.kind == "failover" or (
                    asked is not None and asked > policy.max_retry_after
                ):
                    skip.add(id(dep))
                elif asked is not None:
                    retry_after = max(retry_after or 0.0, asked)
            if not tried:
                break
    assert last is not None
    if event.attempts > 1 and last.status != 429:
        last.retryable = False  # Crossway has retried already; an SDK retry would multiply it
    raise last


async def _attempt(
    req: Request,
    dep: Deployment,
    operation: str,
    exchange: Exchange,
    event: UsageEvent,
    stream: bool,
) -> Sent | Miss:
    """One try on one deployment: its answer, or what went wrong."""
    health = req.services.health
    provider = dep.provider
    event.attempts += 1
    event.model, event.provider, event.vendor, event.upstream_model = (
        dep.model,
        provider.name,
        provider.vendor,
        dep.upstream_model,
    )
    if provider.inline_media_urls:
        await exchange.prepare(dep, req.services.fetch_policy)
    body = exchange.body_for(dep)
    extra = exchange.headers() + provider.forwarded_headers(req.header)
    health.started(dep)
    started = time.perf_counter()
    verdict = False  # the breaker heard how it went
    kept = False  # the answer goes back to the caller, which releases the slot when done
    try:
        try:
            if provider.dynamic_auth:  # a token that expires: fetched or refreshed here
                extra += await provider.auth_lines()
            resp = await dep.transport.post(dep.url(operation), body, extra)
        except UpstreamError as exc:
            health.failure(dep)
            verdict = True
            return Miss(exc, "retry")
        status = resp.status
        event.upstream_request_id = resp.headers.get(provider.request_id_header)
        if status < 400:
            sent = Sent(resp, dep)
            try:
                if stream:
                    await resp.peek()
                else:
                    try:
                        raw = await resp.read()
                    finally:
                        resp.release()  # drops the connection if the answer was cut short
                    sent.body, sent.usage = exchange.answer(dep, raw)
            except (ConnectionBroken, ReadTimeout) as exc:
                resp.close()
                health.failure(dep)
                verdict = True
                return Miss(_cut_short(dep, exc, stream), "retry")
            except UpstreamError as exc:  # an answer that is not what it should be
                health.failure(dep)
                verdict = True
                return Miss(exc, "retry")
            except InvalidRequest as exc:  # a sound answer that refuses the request
                health.success(dep)
                verdict = True
                return Miss(exc, "final")
            health.success(dep, (time.perf_counter() - started) * 1000)
            verdict = kept = True
            return sent
        try:
            raw = await resp.read()
        except (ConnectionBroken, ReadTimeout):
            resp.close()
            raw = b""
        error = upstream_error(provider, status, raw, resp.headers)
        kind = classify(status)
        if kind == "final":
            health.success(dep)  # the deployment answered; the request was at fault
            error.retryable = False
        else:
            health.failure(dep)
        verdict = True
        return Miss(error, kind, retry_after_seconds(resp.headers))
    finally:
        if not verdict:  # cancelled: the client left while we waited
            health.abandoned(dep)
        if not kept:
            health.release(dep)


def _cut_short(dep: Deployment, exc: Exception, stream: bool) -> UpstreamError:
    provider = dep.provider
    timed_out = isinstance(exc, ReadTimeout)
    what = "its first byte" if stream else "the end of its answer"
    return UpstreamError(
        f"upstream {provider.name} ({provider.vendor}) "
        + (f"went silent before {what}" if timed_out else f"broke off before {what}"),
        vendor=provider.vendor,
        status=504 if timed_out else 502,
        kind="upstream_timeout" if timed_out else "upstream_error",
    )
