"""The Redis limiter: the same limits, exact across every gateway process sharing one Redis.

Each admission is one Lua script, so checking and taking a slot is atomic. A busy key far from
its limits takes admissions in blocks instead (`crossway.limits.allowance`): one script call
grants the request and an allowance of more, which this process then spends without asking.
Time is the gateway's clock (in milliseconds): processes on one host agree exactly, hosts as
far as NTP keeps them together.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from crossway.limits.allowance import (
    HOLD_MS,
    MAX_EXTRA,
    MIN_ROOM_REQUESTS,
    Allowance,
    BusyKeys,
)
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

log = logging.getLogger("crossway.limits")

# One admission: budgets, the requests-per-minute window, tokens this minute, requests at
# once; then, when ARGV[11] > 0 and every limit has room for it, an allowance of up to that
# many admissions more (see crossway.limits.allowance): ARGV[12] its life in ms, ARGV[13]
# how many requests' worth must be left of every limit, ARGV[14] and ARGV[15] the costliest
# request's cost and tokens so far ('' when none is known yet). Keys with a concurrency limit
# ask for none. ARGV[16] = '1' asks for the allowance alone, with no request of its own (a
# refill, before the open allowance runs out): all or nothing.
# The requests-per-minute window is a log of admissions: one member per request ("id#1"), or
# per allowance ("id/block#n", n admissions stamped at its end; named apart from the granting
# request's own "id#1", which a give-back of one used admission would otherwise overwrite),
# with KEYS[7] holding the sum of the counts, so an allowance costs Redis the same whatever
# its size.
# Returns {0, used, reset, tokens, extra, cost reserve, token reserve}, or a refusal:
# {1, budget index, spent}, {2 (at once) | 3 (rpm) | 4 (tpm), used, reset, tokens}, or for a
# refill that gets no allowance {5}.
_ADMIT = """
local now = tonumber(ARGV[10])
local cost_room = nil
for i = 1, 3 do
  if ARGV[3 + i] ~= '' then
    local spent = tonumber(redis.call('GET', KEYS[3 + i]) or '0')
    local budget = tonumber(ARGV[3 + i])
    if spent >= budget then return {1, i, tostring(spent)} end
    if cost_room == nil or budget - spent < cost_room then cost_room = budget - spent end
  end
end
local window = tonumber(ARGV[8])
local used = -1
local reset = 0
if ARGV[1] ~= '' then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if #gone > 0 then
    local n = 0
    for _, member in ipairs(gone) do n = n + (tonumber(string.match(member, '#(%d+)$')) or 1) end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    redis.call('DECRBY', KEYS[7], n)
  end
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] then
    used = math.max(tonumber(redis.call('GET', KEYS[7]) or '0'), 0)
    reset = tonumber(oldest[2]) + window - now
  else
    used = 0
    redis.call('DEL', KEYS[7])  -- an empty log counts nothing, whatever the count says
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
local extra = tonumber(ARGV[11])
local cost_reserve = 0
local token_reserve = 0
local token_room = 0
if extra > 0 then
  local floor_room = tonumber(ARGV[13])
  if ARGV[1] ~= '' then
    local room = tonumber(ARGV[1]) - used - 1
    if room < floor_room then
      extra = 0
    else
      extra = math.min(extra, math.floor(room / 8))
    end
  end
  if cost_room ~= nil and (ARGV[14] == '' or cost_room < floor_room * tonumber(ARGV[14])) then
    extra = 0
  end
  if ARGV[2] ~= '' then
    token_room = tonumber(ARGV[2]) - tokens
    if ARGV[15] == '' or token_room < floor_room * tonumber(ARGV[15]) then extra = 0 end
  end
  if extra < 2 then extra = 0 end
end
local refill = ARGV[16] == '1'
if refill and extra == 0 then return {5} end
-- reserves: twice what the block would cost at the costliest request so far, at most an
-- eighth of what is left
if extra > 0 and cost_room ~= nil then
  cost_reserve = math.min(cost_room / 8, 2 * (extra + 1) * tonumber(ARGV[14]))
end
if extra > 0 and ARGV[2] ~= '' then
  token_reserve = math.min(math.floor(token_room / 8), 2 * (extra + 1) * tonumber(ARGV[15]))
end
local hold = tonumber(ARGV[12])
if ARGV[1] ~= '' then
  local added = extra
  if not refill then
    redis.call('ZADD', KEYS[1], now, ARGV[7] .. '#1')
    added = added + 1
  end
  if extra > 0 then redis.call('ZADD', KEYS[1], now + hold, ARGV[7] .. '/block#' .. extra) end
  redis.call('INCRBY', KEYS[7], added)
  redis.call('PEXPIRE', KEYS[1], window + hold)
  redis.call('PEXPIRE', KEYS[7], window + hold)
  used = used + added
  if reset == 0 then reset = window end
end
if ARGV[3] ~= '' and not refill then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), ARGV[7])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[9]))
end
if cost_reserve > 0 then
  redis.call('INCRBYFLOAT', KEYS[4], cost_reserve)
  redis.call('EXPIRE', KEYS[4], 172800)
  redis.call('INCRBYFLOAT', KEYS[5], cost_reserve)
  redis.call('EXPIRE', KEYS[5], 3456000)
  redis.call('INCRBYFLOAT', KEYS[6], cost_reserve)
end
if token_reserve > 0 then
  redis.call('INCRBY', KEYS[3], token_reserve)
  redis.call('PEXPIRE', KEYS[3], 2 * window)
end
return {0, used, reset, tokens, extra, tostring(cost_reserve), token_reserve}
"""

# Charging what requests used: tokens ARGV[1] and cost ARGV[2] (either may be negative: an
# allowance that used less than its reserve), the tokens key living ARGV[3] ms; out of KEYS[1]
# the member ARGV[4] (a settled request's concurrency lease; '' for none); and an ending
# allowance's unused admissions out of the window: its entry ARGV[5]/block#ARGV[6] counts ARGV[7]
# (those it used) from now on, and the window's count KEYS[6] drops by the rest, unless the
# entry has left the window already (then so did its count).
_SETTLE = """
if ARGV[4] and ARGV[4] ~= '' then redis.call('ZREM', KEYS[1], ARGV[4]) end
if ARGV[5] then
  local granted, used = tonumber(ARGV[6]), tonumber(ARGV[7])
  local entry = ARGV[5] .. '/block#' .. granted
  local stamp = redis.call('ZSCORE', KEYS[1], entry)
  if stamp and used < granted then
    redis.call('ZREM', KEYS[1], entry)
    if used > 0 then redis.call('ZADD', KEYS[1], stamp, ARGV[5] .. '/block#' .. used) end
    if redis.call('DECRBY', KEYS[6], granted - used) < 0 then redis.call('SET', KEYS[6], 0) end
  end
end
if tonumber(ARGV[1]) ~= 0 then
  redis.call('INCRBY', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if tonumber(ARGV[2]) ~= 0 then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[3], 172800)
  redis.call('INCRBYFLOAT', KEYS[4], ARGV[2])
  redis.call('EXPIRE', KEYS[4], 3456000)
  redis.call('INCRBYFLOAT', KEYS[5], ARGV[2])
end
return 1
"""

_PERIODS = ("daily", "monthly", "total")


@dataclass(slots=True)
class _Owed:
    tokens: int = 0
    cost: float = 0.0
    now_ms: int = 0  # when the last of them settled: the counters it goes to


def _arg(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "cw") -> None:
        self.redis = RespClient(url)
        self.prefix = prefix
        self._admit = Script(self.redis, _ADMIT)
        self._settle = Script(self.redis, _SETTLE)
        self.busy = BusyKeys()
        self.allowances: dict[str, Allowance] = {}  # key id -> its open allowance here
        # keys with a grant on its way: their other admissions wait for its allowance
        self._granting: dict[str, asyncio.Future[bool]] = {}
        self._waiting: dict[str, int] = {}  # key id -> admissions waiting for that grant
        self._next: dict[str, Allowance] = {}  # key id -> the refill, once it came
        self._under: dict[str, Allowance] = {}  # lease -> the allowance that admitted it
        self._largest: dict[str, tuple[float, int]] = {}  # key id -> costliest request seen
        self._releases: set[asyncio.Task[None]] = set()
        # what requests that outlived their allowance used while their key had no other
        # open: charged with the key's next allowance, or on their own after HOLD_MS
        self._owed: dict[str, _Owed] = {}
        self.round_trips = 0  # admission script calls (the other admissions used allowances)
        self._closing = False

    def _keys(self, key_id: str, now_ms: int) -> list[str]:
        base = f"{self.prefix}:{{{key_id}}}"  # one hash slot per key, for Redis Cluster
        minute = now_ms // WINDOW_MS
        return [
            f"{base}:rpm:log",  # the window's entries, "id#count"
            f"{base}:conc",
            f"{base}:tpm:{minute}",
            f"{base}:spend:d:{day_id(now_ms)}",
            f"{base}:spend:m:{month_id(now_ms)}",
            f"{base}:spend:t",
            f"{base}:rpm:n",  # the sum of their counts
        ]

    def admit_here(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission | None:
        """One admission from the key's open allowance; an allowance with none left ends,
        and the refill waiting behind it, if any, opens. One running low asks for its refill."""
        allowance = self.allowances.get(key_id)
        while allowance is not None:
            admission = allowance.admit(now_ms, quota.tpm)
            if admission is not None:
                if not allowance.refilled and (
                    now_ms >= allowance.low_at_ms or allowance.used >= allowance.low_at_used
                ):
                    allowance.refilled = True
                    self._refill(key_id, quota, lease, now_ms, allowance)
                self._under[lease] = allowance
                return admission
            self._end(key_id, allowance)
            allowance = self.allowances.get(key_id)
        return None

    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        admission = self.admit_here(key_id, quota, lease, now_ms)
        if admission is not None:
            return admission
        recent = self.busy.count(key_id, now_ms)
        while True:
            granting = self._granting.get(key_id)
            if granting is None:
                break
            # an allowance on its way: wait for it rather than ask Redis alongside it
            self._waiting[key_id] = self._waiting.get(key_id, 0) + 1
            try:
                granted = await asyncio.shield(granting)
            finally:
                self._waiting[key_id] -= 1
            if not granted:
                break  # it granted none: each asks Redis for itself
            admission = self.admit_here(key_id, quota, lease, now_ms)
            if admission is not None:
                return admission
        want = 0
        if quota.concurrency is None and key_id not in self._granting:
            want = self._want(key_id, recent)
        keys = self._keys(key_id, now_ms)
        grant = self._grant_pending(key_id) if want else None
        granted = False
        try:
            result = await self._ask(key_id, keys, quota, lease, now_ms, want, HOLD_MS)
            admission = _admission(result, quota, now_ms)
            if int(result[4]):
                self._under[lease] = self._open(
                    key_id, quota, lease, keys, now_ms, now_ms + HOLD_MS, admission, result
                )
                granted = True
        finally:
            if grant is not None:  # its waiters go on: to this allowance, or each to Redis
                self._grant_done(key_id, grant, granted)
        return admission

    async def _ask(
        self,
        key_id: str,
        keys: list[str],
        quota: Quota,
        lease: str,
        now_ms: int,
        want: int,
        hold_ms: int,
        refill: bool = False,
    ) -> list[Any]:
        """The admission script: this request, and an allowance of up to `want` more that
        expires `hold_ms` from now (a refill: the allowance alone)."""
        cost, tokens = self._largest.get(key_id, (None, None))
        self.round_trips += 1
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
                want,
                hold_ms,
                MIN_ROOM_REQUESTS,
                _arg(cost),
                _arg(tokens),
                "1" if refill else "0",
            ],
        )
        return result

    def _want(self, key_id: str, recent: int) -> int:
        """The size of the key's next allowance: what its rate needs, and enough for the
        requests already waiting too; none for a key that is not busy."""
        want = BusyKeys.wanted(recent)
        return min(MAX_EXTRA, max(want, 2 * self._waiting.get(key_id, 0))) if want else 0

    def _grant_pending(self, key_id: str) -> asyncio.Future[bool]:
        """Mark a grant as on its way: the key's admissions that find no allowance wait."""
        grant = self._granting[key_id] = asyncio.get_running_loop().create_future()
        return grant

    def _grant_done(self, key_id: str, grant: asyncio.Future[bool], granted: bool) -> None:
        del self._granting[key_id]
        grant.set_result(granted)

    def _refill(
        self, key_id: str, quota: Quota, lease: str, now_ms: int, running: Allowance
    ) -> None:
        """Ask for the key's next allowance, to start when the open one ends, while the open
        one still admits, unless a grant is on its way already."""
        if self._closing or key_id in self._granting:
            return
        want = self._want(key_id, running.rate(now_ms))
        if want:
            grant = self._grant_pending(key_id)
            refill = self._ask_refill(
                key_id, quota, f"{lease}/next", now_ms, running.expires_ms + HOLD_MS, want, grant
            )
            self._in_background(refill)

    async def _ask_refill(
        self,
        key_id: str,
        quota: Quota,
        grant_id: str,
        now_ms: int,
        expires_ms: int,
        want: int,
        grant: asyncio.Future[bool],
    ) -> None:
        keys = self._keys(key_id, now_ms)
        granted = False
        hold_ms = expires_ms - now_ms
        try:
            result = await self._ask(
                key_id, keys, quota, grant_id, now_ms, want, hold_ms, refill=True
            )
            if int(result[0]) == 0:  # else refused or near a limit: each request asks Redis
                admission = _admission(result, quota, now_ms)
                self._open(
                    key_id,
                    quota,
                    grant_id,
                    keys,
                    now_ms,
                    expires_ms,
                    admission,
                    result,
                    refill=True,
                )
                granted = True
        except Exception:  # the requests after the open allowance ask Redis themselves
            log.debug("refilling the allowance of %s failed", key_id, exc_info=True)
        finally:
            self._grant_done(key_id, grant, granted)

    def _open(
        self,
        key_id: str,
        quota: Quota,
        lease: str,
        keys: list[str],
        now_ms: int,
        expires_ms: int,
        admission: Admission,
        result: list[Any],
        refill: bool = False,
    ) -> Allowance:
        """Keep the allowance a grant brought, for this key's next admissions here: at once,
        or after the open one if it still admits (a refill)."""
        extra = int(result[4])
        budgets = (quota.budget_daily, quota.budget_monthly, quota.budget_total)
        allowance = Allowance(
            grant_id=lease,
            keys=keys,
            extra=extra,
            expires_ms=expires_ms,
            cost_reserve=float(result[5]) if any(b is not None for b in budgets) else None,
            token_reserve=int(result[6]) if quota.tpm is not None else None,
            granted_at_ms=now_ms,
            requests_remaining=admission.requests_remaining,
            requests_reset_ms=admission.requests_reset_ms,
            tokens_used=int(result[3]),
        )
        previous = self.allowances.get(key_id)
        if refill and previous is not None and previous.open:
            self._next[key_id] = allowance
        else:
            if previous is not None:
                self._end(key_id, previous)
            self.allowances[key_id] = allowance
            self._pay_owed(key_id)  # what outlived the last one is charged with this one
        # an idle key's allowance ends on time too, giving back what it did not use
        asyncio.get_running_loop().call_later(
            (expires_ms - now_ms) / 1000, self._end, key_id, allowance
        )
        return allowance

    def _end(self, key_id: str, allowance: Allowance) -> None:
        """Close an allowance: its unused admissions and reserves go back to Redis. The
        refill waiting behind it opens."""
        if not allowance.open:
            return
        allowance.open = False
        # a key that runs out of allowances (a refill refused, or it went quiet) is still
        # known to be busy; a refill that never opened has nothing to add
        if allowance.used:
            self.busy.count(key_id, allowance.expires_ms, allowance.used)
        if self._next.get(key_id) is allowance:
            del self._next[key_id]
        elif self.allowances.get(key_id) is allowance:
            del self.allowances[key_id]
            following = self._next.pop(key_id, None)
            if following is not None:
                self.allowances[key_id] = following
                self._pay_owed(key_id)
        self._in_background(self._give_back(allowance))

    async def _give_back(self, allowance: Allowance) -> None:
        """Charge what the allowance used less its reserve, and take its unused entries out
        of the window; retried while Redis is unreachable, since until then the reserve
        stays charged (limits err on the safe side, but a budget would stay short)."""
        await self._charge(
            allowance.keys,
            allowance.tokens - (allowance.token_reserve or 0),
            allowance.cost - (allowance.cost_reserve or 0.0),
            ["", allowance.grant_id, allowance.extra, allowance.used],
        )

    async def _charge(
        self, keys: list[str], tokens: int, cost: float, unused: list[Any] | None = None
    ) -> None:
        """Add tokens and cost to the counters and take an ending allowance's unused entries
        (`_SETTLE`'s ARGV[4..7]) out of the window, until Redis takes it."""
        args = [tokens, repr(cost), 2 * WINDOW_MS, *(unused or ())]
        delay = 0.5
        while True:
            try:
                await self._settle(keys=[keys[0], *keys[2:7]], args=args)
                return
            except Exception:
                log.warning("could not charge %s; retrying", keys[0])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _pay_owed(self, key_id: str) -> None:
        """What requests that outlived their allowance used: with the key's open allowance
        if it has one by now, else in one call of its own."""
        owed = self._owed.pop(key_id, None)
        if owed is None:
            return
        allowance = self.allowances.get(key_id)
        if allowance is not None and allowance.open:
            allowance.tokens += owed.tokens
            allowance.cost += owed.cost
            return
        keys = self._keys(key_id, owed.now_ms)
        self._in_background(self._charge(keys, owed.tokens, owed.cost))

    def _settle_call(self, item: Settlement) -> tuple[list[str], list[Any]]:
        keys = self._keys(item.key_id, item.now_ms)
        return keys[1:7], [item.tokens, repr(item.cost), 2 * WINDOW_MS, item.lease]

    async def settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        await self.settle_many([Settlement(key_id, lease, tokens, cost, now_ms)])

    def settle_here(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> bool:
        largest = self._largest.get(key_id)
        if largest is None or cost > largest[0] or tokens > largest[1]:
            largest = largest or (0.0, 0)
            self._largest[key_id] = (max(largest[0], cost), max(largest[1], tokens))
        allowance = self._under.pop(lease, None)
        if allowance is None:
            return False  # admitted by Redis itself: its lease and charges go there
        if not allowance.open:
            # it outlived its allowance (a request takes longer than an allowance lives):
            # charged with the key's open one, or held briefly to be, so it needs no call
            # of its own
            allowance = self.allowances.get(key_id)
            if allowance is None:
                owed = self._owed.get(key_id)
                if owed is None:
                    owed = self._owed[key_id] = _Owed()
                    loop = asyncio.get_running_loop()
                    loop.call_later(HOLD_MS / 1000, self._pay_owed, key_id)
                owed.tokens += tokens
                owed.cost += cost
                owed.now_ms = now_ms
                return True
        allowance.cost += cost  # charged to Redis when the allowance ends
        allowance.tokens += tokens
        return True

    async def settle_many(self, items: list[Settlement]) -> None:
        calls = [self._settle_call(item) for item in items if not self.settle_here(*item)]
        if not calls:
            return
        # all go out in one write; then wait for all the answers
        replies = await self._settle.many(calls)
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
        self._closing = True  # no more refills; those on their way land, to be given back
        if self._granting:
            await asyncio.wait(list(self._granting.values()), timeout=5.0)
        for key_id, allowance in [*self._next.items(), *self.allowances.items()]:
            self._end(key_id, allowance)
        for key_id in list(self._owed):
            self._pay_owed(key_id)
        if self._releases:  # a few seconds for give-backs still waiting for Redis
            _, waiting = await asyncio.wait(self._releases, timeout=5.0)
            for task in waiting:
                task.cancel()
        await self.redis.close()


def _admission(result: list[Any], quota: Quota, now_ms: int) -> Admission:
    """An admission script's answer: the headers' figures, or the refusal it means."""
    status = int(result[0])
    if status == 1:
        period = _PERIODS[int(result[1]) - 1]
        budget = (quota.budget_daily, quota.budget_monthly, quota.budget_total)[int(result[1]) - 1]
        assert budget is not None
        raise budget_error(period, budget, float(result[2]), now_ms)
    used, reset, tokens = int(result[1]), int(result[2]), int(result[3])
    rpm, tpm = quota.rpm, quota.tpm
    admission = Admission(
        None if rpm is None else rpm - used,
        reset if rpm is not None else 0,
        None if tpm is None else tpm - tokens,
        WINDOW_MS - now_ms % WINDOW_MS if tpm is not None else 0,
    )
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
