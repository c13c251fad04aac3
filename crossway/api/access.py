"""What a virtual key may do: which models and vendors, within which limits and budgets."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time

from crossway.api.auth import Principal
from crossway.errors import GatewayError, PermissionDenied
from crossway.limits import Admission, Limiter, Quota
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
        self._pending: set[asyncio.Task[None]] = set()

    async def admit(self, key: ApiKey, lease: str) -> tuple[Quota, Admission] | None:
        quota = quota_of(key)
        if quota.unlimited:
            return None
        try:
            admission = await self.limiter.admit(key.id, quota, lease, int(time.time() * 1000))
        except GatewayError:
            raise
        except Exception:  # fail closed: a key's limits are never skipped
            log.warning("the limiter could not be asked about key %s", key.id, exc_info=True)
            raise GatewayError("the rate limiter cannot be reached; try again", status=503,
                               kind="service_unavailable", headers={"retry-after": "2"}
                               ) from None
        return quota, admission

    def settle(self, key_id: str, lease: str, tokens: int, cost: float) -> None:
        task = asyncio.get_running_loop().create_task(
            self._settle(key_id, lease, tokens, cost, int(time.time() * 1000))
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        try:
            await self.limiter.settle(key_id, lease, tokens, cost, now_ms)
        except Exception:  # the limiter's store is down: the ledger still has the cost
            log.warning("could not settle request %s for key %s", lease, key_id, exc_info=True)

    async def drain(self) -> None:
        """Wait for the settlements still running (a graceful stop)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
