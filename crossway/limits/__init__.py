"""Rate limits and budgets behind one small async interface; memory and Redis backends."""

from crossway.limits.base import (
    Admission,
    BudgetExceeded,
    Limiter,
    Quota,
    RateLimited,
    Spend,
    ratelimit_headers,
)
from crossway.limits.memory import MemoryLimiter


def create_limiter(redis_url: str | None, prefix: str = "cw") -> Limiter:
    if redis_url:
        from crossway.limits.redis import RedisLimiter

        return RedisLimiter(redis_url, prefix)
    return MemoryLimiter()


__all__ = [
    "Admission",
    "BudgetExceeded",
    "Limiter",
    "MemoryLimiter",
    "Quota",
    "RateLimited",
    "Spend",
    "create_limiter",
    "ratelimit_headers",
]
