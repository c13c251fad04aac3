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
    # the rpm window, run-length: each millisecond with admissions once, with their count
    # (a busy key's window held one int per request: 480,000 at 8,000 a second)
    times: deque[int] = field(default_factory=deque)
    counts: deque[int] = field(default_factory=deque)
    in_window: int = 0  # the sum of counts
    leases: dict[str, int] = field(default_factory=dict)  # lease -> expiry
    token_minute: int = -1
    tokens: int = 0
    day: str = ""
    spent_day: float = 0.0
    month: str = ""
    spent_month: float = 0.0
    spent_total: float = 0.0


def _admission(quota: Quota, state: _KeyState, now_ms: int) -> Admission:
    rpm, tpm = quota.rpm, quota.tpm
    return Admission(
        None if rpm is None else rpm - state.in_window,
        (state.times[0] + WINDOW_MS - now_ms) if rpm is not None and state.times else 0,
        None if tpm is None else tpm - state.tokens,
        WINDOW_MS - now_ms % WINDOW_MS if tpm is not None else 0,
    )


class MemoryLimiter:
    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def _state(self, key_id: str, now_ms: int) -> _KeyState:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        minute = now_ms // WINDOW_MS
        if state.token_minute != minute:
            # UTC days and months start on a minute: within one, neither can change
            state.token_minute, state.tokens = minute, 0
            day, month = day_id(now_ms), month_id(now_ms)
            if state.day != day:
                state.day, state.spent_day = day, 0.0
            if state.month != month:
                state.month, state.spent_month = month, 0.0
        return state

    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        return self.admit_here(key_id, quota, lease, now_ms)

    def admit_here(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        state = self._state(key_id, now_ms)
        if quota.budget_daily is not None and state.spent_day >= quota.budget_daily:
            raise budget_error("daily", quota.budget_daily, state.spent_day, now_ms)
        if quota.budget_monthly is not None and state.spent_month >= quota.budget_monthly:
            raise budget_error("monthly", quota.budget_monthly, state.spent_month, now_ms)
        if quota.budget_total is not None and state.spent_total >= quota.budget_total:
            raise budget_error("total", quota.budget_total, state.spent_total, now_ms)
        rpm, tpm, concurrency = quota.rpm, quota.tpm, quota.concurrency
        times, counts = state.times, state.counts
        edge = now_ms - WINDOW_MS
        while times and times[0] <= edge:
            times.popleft()
            state.in_window -= counts.popleft()
        if concurrency is not None:
            leases = state.leases
            for stale in [k for k, expiry in leases.items() if expiry <= now_ms]:
                del leases[stale]
            if len(leases) >= concurrency:
                admission = _admission(quota, state, now_ms)
                raise rate_error("concurrency", concurrency, 1000, admission, quota)
        if rpm is not None and state.in_window >= rpm:
            admission = _admission(quota, state, now_ms)
            raise rate_error("rpm", rpm, admission.requests_reset_ms, admission, quota)
        if tpm is not None and state.tokens >= tpm:
            admission = _admission(quota, state, now_ms)
            raise rate_error("tpm", tpm, admission.tokens_reset_ms, admission, quota)
        if rpm is not None:
            if times and times[-1] >= now_ms:  # this millisecond (or an earlier reading)
                counts[-1] += 1  # counted at the later time: it leaves no earlier
            else:
                times.append(now_ms)
                counts.append(1)
            state.in_window += 1
        if concurrency is not None:
            state.leases[lease] = now_ms + LEASE_MS
        return _admission(quota, state, now_ms)

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
