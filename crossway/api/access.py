"""What a virtual key may do: which models and vendors, within which limits and budgets."""

from __future__ import annotations

import asyncio
import fnmatch
import logging

from crossway.api.auth import Principal
from crossway.errors import GatewayError, PermissionDenied, ServiceUnavailable
from crossway.limits import Admission, Limiter, Quota
from crossway.limits.base import Settlement
from crossway.routing import Route
from crossway.store.keys import ApiKey

log = logging.getLogger("crossway.limits")


def quota_of(key: ApiKey) -> Quota:
    return Quota(
        rpm=key.rpm,
        tpm=key.tpm,
        concurrency=key.max_concurrency,
        budget_daily=key.budget_daily,
        budget_monthly=key.budget_monthly,
        budget_total=key.budget_total,
    )


def allow_route(principal: Principal, route: Route) -> Route:
    """The route narrowed to what the key may use; 403 if nothing is left."""
    key = principal.key
    if key is None:
        return route
    if key.models and not any(
        fnmatch.fnmatchcase(route.model, p) or fnmatch.fnmatchcase(route.requested, p)
        for p in key.models
    ):
        raise PermissionDenied(
            f"this key may not use model {route.model!r}; it may use: " + ", ".join(key.models),
            param="model",
            code="model_not_allowed",
            retryable=False,
        )
    if key.vendors:
        allowed = [
            d
            for d in route.candidates
            if d.provider.vendor in key.vendors or d.provider.name in key.vendors
        ]
        if not allowed:
            raise PermissionDenied(
                f"this key may not use the vendors that serve {route.model!r}; it may use: "
                + ", ".join(key.vendors),
                param="vendor",
                code="vendor_not_allowed",
                retryable=False,
            )
        route.candidates = allowed
    return route


class Limits:
    """Admits requests of limited keys and settles them off the request path."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self._queue: list[Settlement] = []
        self._flusher: asyncio.Task[None] | None = None
        self._quotas: dict[str, tuple[ApiKey, Quota | None]] = {}  # None: unlimited

    def quota(self, key: ApiKey) -> Quota | None:
        """The key's limits and budgets; None when it has none."""
        cached = self._quotas.get(key.id)
        if cached is None or cached[0] is not key:  # the key object changes when edited
            limits = quota_of(key)
            cached = self._quotas[key.id] = (key, None if limits.unlimited else limits)
        return cached[1]

    def admit_here(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission | None:
        """Admitted at once when the limiter can tell without I/O (nearly every request of
        a busy key); None when it must ask its store: then `admit`."""
        try:
            return self.limiter.admit_here(key_id, quota, lease, now_ms)
        except GatewayError:
            raise
        except Exception:
            raise _unreachable(key_id) from None

    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        try:
            return await self.limiter.admit(key_id, quota, lease, now_ms)
        except GatewayError:
            raise
        except Exception:
            raise _unreachable(key_id) from None

    def settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        """Settle at once when the limiter can without I/O; else queue it: the queue goes to
        the limiter once per turn of the loop."""
        if self.limiter.settle_here(key_id, lease, tokens, cost, now_ms):
            return
        self._queue.append(Settlement(key_id, lease, tokens, cost, now_ms))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self.limiter.settle_many(batch)
            except Exception:  # the limiter's store is down: the ledger still has the costs
                log.warning("could not settle %d requests", len(batch), exc_info=True)

    async def drain(self) -> None:
        """Wait for the settlements still queued or running (a graceful stop)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _unreachable(key_id: str) -> ServiceUnavailable:
    """Fail closed: a key's limits are never skipped."""
    log.warning("the limiter could not be asked about key %s", key_id, exc_info=True)
    return ServiceUnavailable("the rate limiter cannot be reached; try again")
