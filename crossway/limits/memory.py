"""The in-process limiter: exact for one gateway process, nothing to run."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from crossway.limits.base import (
    LEASE_MS,
    WINDOW_MS,
    Admission,
    Quota,
    Settlement,
    Spend,
    budget_error,
    day_id,
    month_id,
    rate_error,
)


@dataclass(slots=True)
class _KeyState:
    requests: deque[int] = field(default_factory=deque)  # admission times, last 60 s
    leases: dict[str, int] = field(default_factory=dict)  # lease -> expiry
    token_minute: int = 0
    tokens: int = 0
    day: str = ""
    spent_day: float = 0.0
    month: str = ""
    spent_month: float = 0.0
    spent_total: float = 0.0


def _admission(
    quota: Quota, requests: deque[int], tokens: int, now_ms: int, token_reset: int
) -> Admission:
    rpm, tpm = quota.rpm, quota.tpm
    return Admission(
        None if rpm is None else rpm - len(requests),
        (requests[0] + WINDOW_MS - now_ms) if rpm is not None and requests else 0,
        None if tpm is None else tpm - tokens,
        token_reset if tpm is not None else 0,
    )


class MemoryLimiter:
    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def _state(self, key_id: str, now_ms: int) -> _KeyState:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        day, month = day_id(now_ms), month_id(now_ms)
        if state.day != day:
            state.day, state.spent_day = day, 0.0
        if state.month != month:
            state.month, state.spent_month = month, 0.0
        minute = now_ms // WINDOW_MS
        if state.token_minute != minute:
            state.token_minute, state.tokens = minute, 0
        return state

    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        return self.admit_here(key_id, quota, lease, now_ms)

    def admit_here(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        state = self._state(key_id, now_ms)
        for period, budget, spent in (
            ("daily", quota.budget_daily, state.spent_day),
            ("monthly", quota.budget_monthly, state.spent_month),
            ("total", quota.budget_total, state.spent_total),
        ):
            if budget is not None and spent >= budget:
                raise budget_error(period, budget, spent, now_ms)
        requests = state.requests
        while requests and requests[0] <= now_ms - WINDOW_MS:
            requests.popleft()
        token_reset = WINDOW_MS - now_ms % WINDOW_MS
        admission = _admission(quota, requests, state.tokens, now_ms, token_reset)
        if quota.concurrency is not None:
            leases = state.leases
            for stale in [k for k, expiry in leases.items() if expiry <= now_ms]:
                del leases[stale]
            if len(leases) >= quota.concurrency:
                raise rate_error("concurrency", quota.concurrency, 1000, admission, quota)
        if quota.rpm is not None and len(requests) >= quota.rpm:
            raise rate_error("rpm", quota.rpm, admission.requests_reset_ms, admission, quota)
        if quota.tpm is not None and state.tokens >= quota.tpm:
            raise rate_error("tpm", quota.tpm, token_reset, admission, quota)
        if quota.rpm is not None:
            requests.append(now_ms)
            admission = _admission(quota, requests, state.tokens, now_ms, token_reset)
        if quota.concurrency is not None:
            state.leases[lease] = now_ms + LEASE_MS
        return admission

    async def settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        self.settle_here(key_id, lease, tokens, cost, now_ms)

    def settle_here(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> bool:
        state = self._state(key_id, now_ms)
        if state.leases:
            state.leases.pop(lease, None)
        state.tokens += tokens
        state.spent_day += cost
        state.spent_month += cost
        state.spent_total += cost
        return True

    async def settle_many(self, items: list[Settlement]) -> None:
        for item in items:
            self.settle_here(*item)

    async def spend(self, key_id: str, now_ms: int) -> Spend:
        state = self._state(key_id, now_ms)
        return Spend(state.spent_day, state.spent_month, state.spent_total)

    async def seed(
        self,
        daily: dict[str, float],
        monthly: dict[str, float],
        total: dict[str, float],
        now_ms: int,
    ) -> None:
        for key_id in set(daily) | set(monthly) | set(total):
            state = self._state(key_id, now_ms)
            state.spent_day = max(state.spent_day, daily.get(key_id, 0.0))
            state.spent_month = max(state.spent_month, monthly.get(key_id, 0.0))
            state.spent_total = max(state.spent_total, total.get(key_id, 0.0))

    async def close(self) -> None:
        return None
