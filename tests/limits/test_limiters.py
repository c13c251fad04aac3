"""One suite over both limiter backends: memory and the Redis on this machine."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from conftest import REDIS_URL

from crossway.limits import (
    Admission,
    BudgetExceeded,
    Limiter,
    MemoryLimiter,
    Quota,
    RateLimited,
    ratelimit_headers,
)
from crossway.limits.base import _duration_bytes, as_shown, duration, ratelimit_head_lines
from crossway.limits.redis import RedisLimiter

T0 = 1_795_000_000_000  # a fixed "now" in ms, mid-minute
T0 -= T0 % 60_000 - 10_000


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "memory":
        yield MemoryLimiter()
        return
    redis_limiter = RedisLimiter(REDIS_URL, prefix="cwtest-" + secrets.token_hex(4))
    yield redis_limiter
    keys = await redis_limiter.redis.call("KEYS", f"{redis_limiter.prefix}:*")
    if keys:
        await redis_limiter.redis.call("DEL", *keys)
    await redis_limiter.close()


async def test_rpm_is_a_sliding_window(limiter: Limiter) -> None:
    quota = Quota(rpm=3)
    for i in range(3):
        admission = await limiter.admit("k", quota, f"r{i}", T0 + i * 1000)
        assert admission.requests_remaining == 2 - i
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k", quota, "r3", T0 + 5000)
    assert refused.value.headers["retry-after"] == "55"
    assert refused.value.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
    # the first request leaves the window 60 s after it came
    await limiter.admit("k", quota, "r4", T0 + 60_001)
    with pytest.raises(RateLimited):
        await limiter.admit("k", quota, "r5", T0 + 60_002)


async def test_admissions_in_one_millisecond_leave_the_window_together(limiter: Limiter) -> None:
    """The window counts every admission, however many share a millisecond, and lets each
    millisecond's go 60 s later (the memory limiter keeps one entry per millisecond)."""
    quota = Quota(rpm=5)
    remaining = []
    for i, at in enumerate((T0, T0, T0, T0 + 10, T0 + 10)):
        remaining.append((await limiter.admit("k", quota, f"a{i}", at)).requests_remaining)
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(RateLimited):
        await limiter.admit("k", quota, "a5", T0 + 20)
    for i in range(3):  # the three of T0 have left
        await limiter.admit("k", quota, f"b{i}", T0 + 60_001)
    with pytest.raises(RateLimited):
        await limiter.admit("k", quota, "b3", T0 + 60_001)
    for i in range(2):  # and the two of T0 + 10
        await limiter.admit("k", quota, f"c{i}", T0 + 60_011)
    with pytest.raises(RateLimited):
        await limiter.admit("k", quota, "c2", T0 + 60_011)


async def test_memory_counts_an_earlier_clock_reading_at_the_later_time() -> None:
    """A clock read before the last admission's (another request's, or a clock stepped
    back) is counted with that later admission: it leaves the window no earlier."""
    limiter, quota = MemoryLimiter(), Quota(rpm=2)
    await limiter.admit("k", quota, "a", T0 + 100)
    await limiter.admit("k", quota, "b", T0 + 50)
    with pytest.raises(RateLimited):
        await limiter.admit("k", quota, "c", T0 + 60_060)
    admission = await limiter.admit("k", quota, "c", T0 + 60_100)
    assert admission.requests_remaining == 1


async def test_concurrency_slots_come_back_when_settled(limiter: Limiter) -> None:
    quota = Quota(concurrency=2)
    await limiter.admit("k", quota, "a", T0)
    await limiter.admit("k", quota, "b", T0)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k", quota, "c", T0)
    assert refused.value.code == "concurrency_limit_exceeded"
    await limiter.settle("k", "a", 0, 0.0, T0)
    await limiter.admit("k", quota, "c", T0)
    # a lease whose holder died expires by itself
    await limiter.admit("k", quota, "d", T0 + 16 * 60_000)


async def test_tpm_counts_tokens_settled_this_minute(limiter: Limiter) -> None:
    quota = Quota(tpm=100)
    await limiter.admit("k", quota, "a", T0)
    await limiter.settle("k", "a", 120, 0.0, T0)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k", quota, "b", T0 + 1000)
    assert refused.value.code == "tpm_limit_exceeded"
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
    await limiter.admit("k", quota, "c", T0 + 60_000)  # the next minute


@pytest.mark.parametrize("period", ["daily", "monthly", "total"])
async def test_budgets(limiter: Limiter, period: str) -> None:
    quota = Quota(**{f"budget_{period}": 1.0})  # type: ignore[arg-type]
    await limiter.admit("k", quota, "a", T0)
    await limiter.settle("k", "a", 10, 0.6, T0)
    await limiter.admit("k", quota, "b", T0)  # 0.6 < 1.0: still admitted
    await limiter.settle("k", "b", 10, 0.6, T0)
    with pytest.raises(BudgetExceeded) as refused:
        await limiter.admit("k", quota, "c", T0)
    message = refused.value.message
    assert f"{period} budget of $1 is spent" in message and refused.value.status == 402
    assert ("does not reset" in message) == (period == "total")
    spend = await limiter.spend("k", T0)
    assert spend.total == pytest.approx(1.2) and spend.daily == pytest.approx(1.2)
    if period == "daily":  # a new UTC day starts from zero
        await limiter.admit("k", quota, "d", T0 + 86_400_000)


async def test_seed_starts_from_the_ledger_and_keeps_live_counters(limiter: Limiter) -> None:
    await limiter.seed({"k": 0.5}, {"k": 2.0}, {"k": 7.0}, T0)
    spend = await limiter.spend("k", T0)
    assert (spend.daily, spend.monthly, spend.total) == (0.5, 2.0, 7.0)
    await limiter.seed({"k": 0.1}, {"k": 0.1}, {"k": 0.1}, T0)  # an older view: ignored
    assert (await limiter.spend("k", T0)).total == 7.0


async def test_concurrent_admissions_admit_exactly_the_limit(limiter: Limiter) -> None:
    quota = Quota(rpm=25)
    results = await asyncio.gather(
        *(limiter.admit("k", quota, f"r{i}", T0) for i in range(80)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 25
    assert all(isinstance(r, RateLimited) for r in results if isinstance(r, Exception))


async def test_unlimited_quota_admits_everything(limiter: Limiter) -> None:
    for i in range(50):
        admission = await limiter.admit("k", Quota(), f"r{i}", T0)
        assert admission.requests_remaining is None


async def test_settling_in_batches_survives_a_flushed_script_cache(limiter: Limiter) -> None:
    from crossway.limits.base import Settlement
    from crossway.limits.redis import RedisLimiter

    quota = Quota(concurrency=5)
    for i in range(5):
        await limiter.admit("k", quota, f"r{i}", T0)
    if isinstance(limiter, RedisLimiter):
        await limiter.redis.call("SCRIPT", "FLUSH")
    await limiter.settle_many([Settlement("k", f"r{i}", 10, 0.01, T0) for i in range(5)])
    spend = await limiter.spend("k", T0)
    assert spend.total == pytest.approx(0.05)
    for i in range(5):  # every slot came back
        await limiter.admit("k", quota, f"again{i}", T0)


@pytest.mark.parametrize(
    "admission",
    [
        Admission(99_999, 59_000, 10**12 - 5, 30_000),
        Admission(3, 250, None, 0),
        Admission(-2, 0, 5, 999),
        Admission(None, 0, 7, 61_000),
    ],
)
@pytest.mark.parametrize("quota", [Quota(rpm=100, tpm=10**6), Quota(rpm=5), Quota(tpm=9)])
def test_header_lines_say_what_the_headers_say(admission: Admission, quota: Quota) -> None:
    """The raw lines every limited answer sends, made the fast way, match the headers."""
    expected = "".join(f"{k}: {v}\r\n" for k, v in ratelimit_headers(admission, quota).items())
    assert ratelimit_head_lines(admission, quota) == expected.encode()


def test_reset_durations_made_once_are_the_same_as_made_each_time() -> None:
    order = [-1, 1000, -7, 999, 0, 1001, 2000, 1999, 59_999, 60_000, 60_001, 86_399_999, 5]
    for ms in order + order[::-1]:  # each value both made and found again
        assert _duration_bytes(ms) == duration(ms).encode(), ms


def test_a_reset_as_shown_reads_as_the_reset_does_and_so_does_no_less_one() -> None:
    edges = [-5, 0, 1, 998, 999, 1000, 1001, 1999, 2000, 2001, 59_999, 60_000, 60_001]
    for ms in [*edges, *range(0, 130_000, 7)]:
        shown, same_from = as_shown(ms)
        assert duration(shown) == duration(ms) == duration(same_from), ms
        assert same_from <= max(ms, 0) <= shown
        if same_from > 0:  # the least that reads the same: one less reads differently
            assert duration(same_from - 1) != duration(ms), ms
