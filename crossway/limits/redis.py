"""The Redis limiter: the same limits, exact across every gateway process sharing one Redis.

Each admission is one Lua script, so checking and taking a slot is atomic. Time is the
gateway's clock (in milliseconds): processes on one host agree exactly, hosts as far as NTP
keeps them together.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
from crossway.limits.resp import RespClient, Script

_ADMIT = """
local now = tonumber(ARGV[10])
for i = 1, 3 do
  if ARGV[3 + i] ~= '' then
    local spent = tonumber(redis.call('GET', KEYS[3 + i]) or '0')
    if spent >= tonumber(ARGV[3 + i]) then return {1, i, tostring(spent)} end
  end
end
local window = tonumber(ARGV[8])
local used = -1
local reset = 0
if ARGV[1] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  used = redis.call('ZCARD', KEYS[1])
  if used > 0 then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window - now
  end
end
local tokens = -1
if ARGV[2] ~= '' then tokens = tonumber(redis.call('GET', KEYS[3]) or '0') end
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {2, used, reset, tokens} end
end
if ARGV[1] ~= '' and used >= tonumber(ARGV[1]) then return {3, used, reset, tokens} end
if ARGV[2] ~= '' and tokens >= tonumber(ARGV[2]) then return {4, used, reset, tokens} end
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[1], window)
  used = used + 1
  if reset == 0 then reset = window end
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), ARGV[7])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[9]))
end
return {0, used, reset, tokens}
"""

_SETTLE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], 172800)
  redis.call('INCRBYFLOAT', KEYS[4], ARGV[3])
  redis.call('EXPIRE', KEYS[4], 3456000)
  redis.call('INCRBYFLOAT', KEYS[5], ARGV[3])
end
return 1
"""

_PERIODS = ("daily", "monthly", "total")


def _arg(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "cw") -> None:
        self.redis = RespClient(url)
        self.prefix = prefix
        self._admit = Script(self.redis, _ADMIT)
        self._settle = Script(self.redis, _SETTLE)

    def _keys(self, key_id: str, now_ms: int) -> list[str]:
        base = f"{self.prefix}:{{{key_id}}}"  # one hash slot per key, for Redis Cluster
        minute = now_ms // WINDOW_MS
        return [
            f"{base}:rpm",
            f"{base}:conc",
            f"{base}:tpm:{minute}",
            f"{base}:spend:d:{day_id(now_ms)}",
            f"{base}:spend:m:{month_id(now_ms)}",
            f"{base}:spend:t",
        ]

    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        keys = self._keys(key_id, now_ms)
        result: list[Any] = await self._admit(
            keys=keys,
            args=[
                _arg(quota.rpm),
                _arg(quota.tpm),
                _arg(quota.concurrency),
                _arg(quota.budget_daily),
                _arg(quota.budget_monthly),
                _arg(quota.budget_total),
                lease,
                WINDOW_MS,
                LEASE_MS,
                now_ms,
            ],
        )
        status = int(result[0])
        if status == 1:
            period = _PERIODS[int(result[1]) - 1]
            budget = (quota.budget_daily, quota.budget_monthly, quota.budget_total)[
                int(result[1]) - 1
            ]
            assert budget is not None
            raise budget_error(period, budget, float(result[2]), now_ms)
        used, reset, tokens = int(result[1]), int(result[2]), int(result[3])
        admission = Admission()
        if quota.rpm is not None:
            admission.requests_remaining = quota.rpm - used
            admission.requests_reset_ms = reset
        if quota.tpm is not None:
            admission.tokens_remaining = quota.tpm - tokens
            admission.tokens_reset_ms = WINDOW_MS - now_ms % WINDOW_MS
        if status == 2:
            assert quota.concurrency is not None
            raise rate_error("concurrency", quota.concurrency, 1000, admission, quota)
        if status == 3:
            assert quota.rpm is not None
            raise rate_error("rpm", quota.rpm, reset, admission, quota)
        if status == 4:
            assert quota.tpm is not None
            raise rate_error("tpm", quota.tpm, admission.tokens_reset_ms, admission, quota)
        return admission

    def _settle_call(self, item: Settlement) -> tuple[list[str], list[Any]]:
        keys = self._keys(item.key_id, item.now_ms)
        return keys[1:6], [item.lease, item.tokens, repr(item.cost), 2 * WINDOW_MS]

    async def settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        await self.settle_many([Settlement(key_id, lease, tokens, cost, now_ms)])

    async def settle_many(self, items: list[Settlement]) -> None:
        # all go out in one write; then wait for all the answers
        replies = await self._settle.many([self._settle_call(i) for i in items])
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            raise failed[0]

    async def spend(self, key_id: str, now_ms: int) -> Spend:
        keys = self._keys(key_id, now_ms)
        day, month, total = await self.redis.call("MGET", keys[3], keys[4], keys[5])
        return Spend(float(day or 0), float(month or 0), float(total or 0))

    async def seed(
        self,
        daily: dict[str, float],
        monthly: dict[str, float],
        total: dict[str, float],
        now_ms: int,
    ) -> None:
        calls = []
        for key_id in set(daily) | set(monthly) | set(total):
            keys = self._keys(key_id, now_ms)
            # NX: a counter another process already keeps is the truer one
            calls += [
                self.redis.call("SET", keys[3], repr(daily.get(key_id, 0.0)), "NX", "EX", 172800),
                self.redis.call(
                    "SET", keys[4], repr(monthly.get(key_id, 0.0)), "NX", "EX", 3456000
                ),
                self.redis.call("SET", keys[5], repr(total.get(key_id, 0.0)), "NX"),
            ]
        await asyncio.gather(*calls)

    async def close(self) -> None:
        await self.redis.close()
