"""Allowances of the Redis limiter: a busy key's admissions taken in blocks, with every count
in Redis exact once they end, and no limit exceeded across two limiters (two processes)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import REDIS_URL

from crossway.limits import Admission, BudgetExceeded, Quota, RateLimited
from crossway.limits.allowance import HOLD_MS, MIN_ROOM_REQUESTS, Allowance, BusyKeys
from crossway.limits.base import ratelimit_headers
from crossway.limits.redis import RedisLimiter
from crossway.limits.resp import RedisError

T0 = 1_795_000_000_000
T0 -= T0 % 60_000 - 10_000  # mid-minute


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    """Two limiters on one Redis: what two gateway processes are."""
    prefix = "cwtest-" + secrets.token_hex(4)
    first, second = RedisLimiter(REDIS_URL, prefix), RedisLimiter(REDIS_URL, prefix)
    yield first, second
    await first.close()
    await second.close()
    keys = await first.redis.call("KEYS", f"{prefix}:*")
    if keys:
        await first.redis.call("DEL", *keys)
    await first.redis.close()


async def counters(
    limiter: RedisLimiter, key_id: str, now_ms: int, since_ms: int | None = None
) -> tuple[int, int, float]:
    """Requests in the window, and tokens and spend, as Redis holds them: this minute's
    tokens and today's spend, or, from `since_ms` on, summed over every minute and day
    since (a test on the real clock may cross into the next minute)."""
    keys = limiter._keys(key_id, now_ms)
    entries = await limiter.redis.call("ZRANGE", keys[0], 0, -1)
    used = sum(int(entry.rpartition(b"#")[2]) for entry in entries)
    count = await limiter.redis.call("GET", keys[6])
    assert int(count or 0) == used  # the window's count agrees with its entries
    start = now_ms if since_ms is None else since_ms
    tokens, spent = 0, 0.0
    for minute in range(start // 60_000, now_ms // 60_000 + 1):
        minute_keys = limiter._keys(key_id, minute * 60_000)
        tokens += int(await limiter.redis.call("GET", minute_keys[2]) or 0)
    for day in range(start // 86_400_000, now_ms // 86_400_000 + 1):
        day_keys = limiter._keys(key_id, day * 86_400_000)
        spent += float(await limiter.redis.call("GET", day_keys[3]) or 0)
    return used, tokens, spent


async def test_a_busy_key_is_admitted_from_allowances_and_counted_exactly(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    limiter = pair[0]
    quota = Quota(rpm=100_000, tpm=10**9, budget_daily=1_000.0)
    admitted = 0
    for i in range(2_000):  # 20 ms apart in groups of 50: 500 a second
        now = T0 + (i // 50) * 20
        admission = await limiter.admit("k", quota, f"r{i}", now)
        assert admission.requests_remaining is not None
        assert admission.requests_remaining <= 100_000 - (i + 1)  # never more than is left
        await limiter.settle("k", f"r{i}", 10, 0.001, now)
        admitted += 1
    assert limiter.round_trips < admitted / 5  # most came from allowances
    await limiter.close()  # ends the open allowance: unused entries and reserves go back
    used, tokens, spent = await counters(limiter, "k", T0)
    assert used == admitted
    # an allowance is one entry of the window, however many it admitted
    assert await limiter.redis.call("ZCARD", limiter._keys("k", T0)[0]) < admitted / 5
    assert tokens == 10 * admitted
    assert spent == pytest.approx(0.001 * admitted, rel=1e-9)


async def test_two_limiters_never_admit_more_than_the_rpm(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """Both keep asking until each has been refused many times in a row: together they
    admitted exactly the limit, although most of it went out in allowances."""
    limit = 4 * MIN_ROOM_REQUESTS
    quota = Quota(rpm=limit)
    admitted, refused_in_a_row, i = 0, [0, 0], 0
    while min(refused_in_a_row) < 50:
        side = i % 2
        try:
            await pair[side].admit("k", quota, f"r{i}", T0 + i)  # 500 a second each
            admitted += 1
            refused_in_a_row[side] = 0
        except RateLimited:
            refused_in_a_row[side] += 1
        i += 1
        assert admitted <= limit
    assert admitted == limit
    assert pair[0].round_trips + pair[1].round_trips < limit / 2


async def test_a_budget_is_overrun_by_no_more_than_in_flight_requests(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """Admitted and settled one by one on two limiters: the spend passes the budget by at
    most one request per limiter, and Redis holds the exact spend when the allowances end."""
    budget, cost = 3.0, 0.001  # room for 3,000 requests; allowances while 1,000 are left
    quota = Quota(budget_daily=budget)
    spent, refused, i = 0.0, [0, 0], 0
    while min(refused) < 20:
        side = i % 2
        try:
            await pair[side].admit("k", quota, f"r{i}", T0 + i)
        except BudgetExceeded:
            refused[side] += 1
        else:
            await pair[side].settle("k", f"r{i}", 0, cost, T0 + i)
            spent += cost
        i += 1
    assert budget - 1e-9 <= spent <= budget + 2 * cost + 1e-9  # (a sum of 3,000 floats)
    assert pair[0].round_trips + pair[1].round_trips < i / 2
    for limiter in pair:
        await limiter.close()
    assert (await counters(pair[0], "k", T0))[2] == pytest.approx(spent, rel=1e-9)


async def test_keys_near_their_limits_ask_redis_every_time(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    limiter = pair[0]
    small = Quota(rpm=MIN_ROOM_REQUESTS // 2)
    for i in range(300):
        await limiter.admit("small", small, f"s{i}", T0)
    assert limiter.round_trips == 300 and not limiter.allowances
    # a concurrency limit is checked in Redis for every request, whatever the rate
    for i in range(300):
        await limiter.admit("conc", Quota(concurrency=1_000), f"c{i}", T0)
    assert limiter.round_trips == 600


async def test_an_allowance_is_given_back_once_redis_answers_again(
    pair: tuple[RedisLimiter, RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until it is given back, an allowance's reserve stays charged; a Redis that fails
    the give-back once does not leave it so."""
    limiter = pair[0]
    quota = Quota(rpm=100_000, budget_daily=1_000.0)
    failures: list[list[str]] = []

    class Flaky:  # the charging script, whose first give-back fails
        def __init__(self, script: Any) -> None:
            self.script = script
            self.many = script.many  # settlements

        async def __call__(self, keys: list[str], args: list[Any]) -> Any:
            if not failures:
                failures.append(keys)
                raise RedisError("the connection to Redis was lost (simulated)")
            return await self.script(keys, args)

    monkeypatch.setattr(limiter, "_settle", Flaky(limiter._settle))
    for i in range(300):
        now = T0 + (i // 30) * 20
        await limiter.admit("k", quota, f"r{i}", now)
        await limiter.settle("k", f"r{i}", 0, 0.002, now)
    await asyncio.sleep(0.1)  # the last allowance ends (50 ms); the first give-back failed
    if limiter._releases:  # the retry, still waiting
        await asyncio.wait(limiter._releases, timeout=5.0)
    assert failures  # the failure happened, and was retried
    used, _, spent = await counters(limiter, "k", T0)
    assert spent == pytest.approx(0.002 * 300, rel=1e-9)
    assert used == 300


async def test_requests_arriving_during_a_grant_wait_for_its_allowance(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    limiter = pair[0]
    quota = Quota(rpm=100_000)
    for i in range(40):  # busy: 20 in each of two 100 ms buckets
        await limiter.admit("k", quota, f"warm{i}", T0 + (i // 20) * 100)
    before = limiter.round_trips
    now = T0 + 200  # the bucket after the busy one
    await asyncio.gather(*(limiter.admit("k", quota, f"r{i}", now) for i in range(100)))
    # the first asks for an allowance (sized for the rate: 20), the others wait for it; those
    # it could not serve wait for one more, sized for them, instead of each asking Redis
    assert limiter.round_trips - before == 2
    await limiter.close()
    used, _, _ = await counters(limiter, "k", T0)
    assert used == 140


async def test_requests_that_outlive_their_allowance_are_charged_with_the_next(
    pair: tuple[RedisLimiter, RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests admitted from a block that ended before they finished are charged to the
    key's open block, not one Redis call each; the counters come out exact all the same."""
    limiter = pair[0]
    quota = Quota(rpm=100_000, tpm=10**9, budget_daily=1_000.0)
    for i in range(30):  # 250 a second, each settled: the key is busy, its costs known
        await limiter.admit("k", quota, f"warm{i}", T0 + 4 * i)
        await limiter.settle("k", f"warm{i}", 10, 0.001, T0 + 4 * i)
    for i in range(30):  # these are still running when their block ends
        await limiter.admit("k", quota, f"early{i}", T0 + 120 + 4 * i)
    assert limiter.allowances.get("k") is not None
    # the block's life is over, and that of the next, asked for before it ended
    await asyncio.sleep(2 * HOLD_MS / 1000 + 0.03)
    await limiter.admit("k", quota, "later", T0 + 300)  # a new block for the busy key
    assert limiter.allowances.get("k") is not None
    calls = 0
    many = limiter._settle.many

    async def counted(items: list[tuple[list[str], list[Any]]]) -> list[Any]:
        nonlocal calls
        calls += len(items)
        return await many(items)

    monkeypatch.setattr(limiter._settle, "many", counted)
    for i in range(30):
        await limiter.settle("k", f"early{i}", 10, 0.001, T0 + 310)
    await limiter.settle("k", "later", 10, 0.001, T0 + 310)
    assert calls == 0
    await limiter.close()
    used, tokens, spent = await counters(limiter, "k", T0)
    assert (used, tokens) == (61, 610)
    assert spent == pytest.approx(0.061)


async def test_requests_that_outlive_every_allowance_are_charged_once_in_a_single_call(
    pair: tuple[RedisLimiter, RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no open allowance to charge them to, what such requests used is held briefly
    and charged in one call, not one each; the counters come out exact."""
    limiter = pair[0]
    quota = Quota(rpm=100_000, tpm=10**9, budget_daily=1_000.0)
    for i in range(30):  # busy, costs known
        await limiter.admit("k", quota, f"warm{i}", T0 + 4 * i)
        await limiter.settle("k", f"warm{i}", 10, 0.001, T0 + 4 * i)
    for i in range(30):
        await limiter.admit("k", quota, f"early{i}", T0 + 120 + 4 * i)
    # the block ends, and the next, asked for before it ended; the key stays idle: no new one
    await asyncio.sleep(2 * HOLD_MS / 1000 + 0.03)
    assert limiter.allowances.get("k") is None
    calls: list[list[Any]] = []
    script = limiter._settle

    class Counted:  # the settle script, counting the calls made of it
        async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
            calls.append(args)
            return await script(keys=keys, args=args)

        async def many(self, items: list[tuple[list[str], list[Any]]]) -> list[Any]:
            calls.extend(args for _, args in items)
            return await script.many(items)

    monkeypatch.setattr(limiter, "_settle", Counted())
    for i in range(30):
        await limiter.settle("k", f"early{i}", 10, 0.001, T0 + 300)
    assert calls == []  # held for an allowance's life
    await asyncio.sleep(HOLD_MS / 1000 + 0.05)
    assert len(calls) == 1  # one call for all thirty, with no window members to remove
    assert calls[0][0] == 300 and float(calls[0][1]) == pytest.approx(0.03) and len(calls[0]) == 3
    used, tokens, spent = await counters(limiter, "k", T0)
    assert (used, tokens) == (60, 600)
    assert spent == pytest.approx(0.060)
    await limiter.close()


async def test_a_steady_key_never_waits_for_its_next_allowance(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """A block running low asks for the next while it still admits, so after the first
    grant no request waits for Redis; the counters come out exact."""
    limiter = pair[0]
    quota = Quota(rpm=10**8, tpm=10**12, budget_daily=1_000.0)
    waited, total, first_block = 0, 2_000, False
    started_ms = int(time.time() * 1000)
    for i in range(total):  # about 4,000 a second, on the real clock
        now = int(time.time() * 1000)
        if limiter.admit_here("k", quota, f"r{i}", now) is None:
            waited += first_block  # the ramp before the first block does not count
            await limiter.admit("k", quota, f"r{i}", now)
        first_block = first_block or bool(limiter.allowances)
        await limiter.settle("k", f"r{i}", 10, 0.001, now)
        await asyncio.sleep(0.0002)
    assert limiter.round_trips < total / 20
    # at most two refills late on a stalled machine (the old code waited at the end of each
    # of its blocks)
    assert waited <= 2
    await limiter.close()
    used, tokens, spent = await counters(limiter, "k", int(time.time() * 1000), started_ms)
    assert (used, tokens) == (total, 10 * total)
    assert spent == pytest.approx(0.001 * total, rel=1e-9)


async def test_a_key_that_turns_busy_gets_allowances_within_its_first_requests(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    limiter = pair[0]
    quota = Quota(rpm=100_000)
    for i in range(200):  # all in one 100 ms: no earlier bucket says the key is busy
        await limiter.admit("k", quota, f"r{i}", T0)
    assert limiter.round_trips <= 20
    await limiter.close()
    assert (await counters(limiter, "k", T0))[0] == 200


async def test_a_refill_on_its_way_when_the_limiter_closes_is_given_back(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    limiter = pair[0]
    quota = Quota(rpm=100_000, budget_daily=1_000.0)
    admitted = 0
    while "k" not in limiter._granting or not limiter.allowances:  # until a refill is asked
        await limiter.admit("k", quota, f"r{admitted}", T0)
        await limiter.settle("k", f"r{admitted}", 0, 0.001, T0)
        admitted += 1
        assert admitted < 1_000
    await limiter.close()
    used, _, spent = await counters(limiter, "k", T0)
    assert used == admitted
    assert spent == pytest.approx(0.001 * admitted, rel=1e-9)


async def test_the_next_allowance_is_asked_for_early_and_lives_from_where_the_open_one_ends(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """A quarter into a block's life the next is asked for; its life (and its entry in
    Redis' window, stamped at the end of that life) starts where the open block's ends, so
    asking early costs the key nothing and gives the round trip time to land."""
    limiter = pair[0]
    quota = Quota(rpm=100_000)
    i = 0
    while not limiter.allowances:  # busy until it gets a block
        await limiter.admit("k", quota, f"r{i}", T0)
        i += 1
    block = limiter.allowances["k"]
    assert not block.refilled
    quarter = block.expires_ms - 3 * HOLD_MS // 4
    for j in range(HOLD_MS // 10):  # busy enough to need one: 40 per 100 ms
        assert limiter.admit_here("k", quota, f"before{j}", quarter - 1) is not None
    assert "k" not in limiter._granting  # not yet
    assert limiter.admit_here("k", quota, "at", quarter) is not None
    assert "k" in limiter._granting  # asked for, while the block still admits
    while "k" in limiter._granting:
        await asyncio.sleep(0.001)
    following = limiter._next["k"]
    assert following.expires_ms == block.expires_ms + HOLD_MS
    entry = f"{following.grant_id}/block#{following.extra}"
    stamp = await limiter.redis.call("ZSCORE", limiter._keys("k", T0)[0], entry)
    assert int(float(stamp)) == following.expires_ms
    await limiter.close()


async def test_an_allowance_reports_the_counts_as_redis_holds_them(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """Admissions from a block report what any process would read in Redis (the block's
    admissions and reserve counted as used), so they never show more room than there is;
    requests whose headers read the same share one answer."""
    limiter = pair[0]
    quota = Quota(rpm=100_000, tpm=10**9, budget_daily=1_000.0)
    i = 0
    while not limiter.allowances:
        await limiter.admit("k", quota, f"r{i}", T0)
        await limiter.settle("k", f"r{i}", 10, 0.001, T0)
        i += 1
    block = limiter.allowances["k"]
    first = limiter.admit_here("k", quota, "a", T0 + 1)
    again = limiter.admit_here("k", quota, "b", T0 + 150)  # the resets still show 60 s, 50 s
    assert first is not None and first is again
    keys = limiter._keys("k", T0)
    in_window = int(await limiter.redis.call("GET", keys[6]))
    tokens = int(await limiter.redis.call("GET", keys[2]) or 0)
    assert in_window == i + block.extra  # the block's admissions are counted already
    assert first.requests_remaining == quota.rpm - in_window
    assert first.tokens_remaining == 10**9 - tokens  # the reserve is charged already
    # what the headers say is what the exact counts at T0 + 150 would say
    exact = Admission(quota.rpm - in_window, 60_000 - 150, 10**9 - tokens, 50_000 - 150)
    assert ratelimit_headers(again, quota) == ratelimit_headers(exact, quota)
    await limiter.close()


def test_an_allowance_makes_a_new_answer_when_its_headers_would_change() -> None:
    """One answer while the resets show the same; a new one as soon as either shows
    differently (whole seconds down to 1 s, then every millisecond)."""
    block = Allowance(
        grant_id="g",
        keys=[],
        extra=1_000,
        expires_ms=T0 + HOLD_MS,
        cost_reserve=None,
        token_reserve=None,
        granted_at_ms=T0,
        requests_remaining=500,
        requests_reset_ms=1_100,  # shows "2s" until T0 + 100, "1s" at T0 + 100
        tokens_used=0,
    )
    start = block.admit(T0, None)
    assert start is not None and block.admit(T0 + 99, None) is start
    one_second = block.admit(T0 + 100, None)
    assert one_second is not None and one_second is not start
    assert ratelimit_headers(one_second)["x-ratelimit-reset-requests"] == "1s"
    answers = [block.admit(T0 + t, None) for t in (101, 102, 102)]
    assert answers[0] is not answers[1] and answers[1] is answers[2]
    assert [ratelimit_headers(a)["x-ratelimit-reset-requests"] for a in answers if a] == [
        "999ms",
        "998ms",
        "998ms",
    ]


async def test_the_next_allowance_is_sized_by_the_rate_the_open_one_admits_at(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """A block's requests are not counted one by one: its own admissions since its life
    began say how busy the key is. A key that sped up gets a bigger next block; one that
    went quiet asks for none (its requests ask Redis again once the block ends)."""
    limiter = pair[0]
    quota = Quota(rpm=10**6)
    asked: dict[str, int] = {}  # admissions asked of Redis before the key's first block

    async def first_block(key: str) -> Allowance:
        asked[key] = 0
        while key not in limiter.allowances:
            await limiter.admit(key, quota, f"{key}-r{asked[key]}", T0)
            asked[key] += 1
        return limiter.allowances[key]

    busy = await first_block("busy")
    quarter = busy.expires_ms - 3 * HOLD_MS // 4
    for j in range(19):
        assert limiter.admit_here("busy", quota, f"b{j}", quarter - 1) is not None
    assert "busy" not in limiter._granting
    assert limiter.admit_here("busy", quota, "b19", quarter) is not None  # 20 in 50 ms
    rate = 20 * 100 // (HOLD_MS // 4)
    assert busy.rate(quarter) == rate
    while "busy" in limiter._granting:
        await asyncio.sleep(0.001)
    following = limiter._next["busy"]
    assert following.extra == BusyKeys.wanted(rate) > busy.extra

    quiet = await first_block("quiet")
    assert limiter.admit_here("quiet", quota, "q0", quiet.expires_ms - 3 * HOLD_MS // 4)
    assert quiet.refilled and "quiet" not in limiter._granting  # one in 50 ms: not busy
    assert "quiet" not in limiter._next
    await limiter.close()  # the blocks end: what they did not use leaves the window
    assert (await counters(limiter, "busy", T0))[0] == asked["busy"] + 20
    # the quiet block gave one admission: its entry, renamed to count one, is not the
    # granting request's own (they once shared a name, and the window lost an entry)
    assert (await counters(limiter, "quiet", T0))[0] == asked["quiet"] + 1
