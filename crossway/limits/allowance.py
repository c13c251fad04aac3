"""Allowances: a block of admissions one gateway process may make for a busy key on its own.

A key that is far from all of its limits and sends many requests would otherwise cost one
Redis round trip per request. Instead, the request that finds the key busy asks Redis for
itself and for up to a few thousand more admissions at once (`RedisLimiter`'s grant script),
which Redis takes out of the shared counts in the same atomic step:

- requests per minute: one entry per extra admission goes into the key's sliding-window log,
  stamped at the end of the allowance's life so it leaves the window no earlier than a
  request admitted under it; unused ones are taken out again when the allowance ends;
- budgets and tokens per minute: a reserve (twice what the block would use at the costliest
  request seen so far, at most an eighth of what is left) is charged to the counters up
  front; requests admitted under the allowance are charged to it locally, it ends once they
  spent past the reserve, and when it ends the counters get the difference between what was
  used and the reserve (retried until Redis takes it).

So other processes always see the allowance as used, and no limit is ever exceeded by more
than it would be without allowances. An allowance is only granted while the key has plenty of
room: at least `MIN_ROOM_REQUESTS` requests left in its window, and budget and token room for
`MIN_ROOM_REQUESTS` of its costliest requests seen so far; near a limit every request goes to
Redis, exactly as before. An allowance lives `HOLD_MS` at most; within that time, unused
admissions held by one process may make another refuse a request a little early.

The next allowance is asked for a quarter into the open one's life (or three quarters
through its admissions), and its life starts where the open one's ends: on a loaded machine
a grant's round trip took up to 20 ms, and a refill asked for late left the key's requests
waiting for it. So a busy key's process holds at most two allowances, one open and the next,
and its unused admissions are in Redis' window for at most `2 * HOLD_MS`.

An allowance lives 200 ms: each one costs two script calls (its grant and its give-back),
about 110-130 µs of Redis' CPU each on a 2 vCPU machine plus the gateway's side of the round
trip, and at 50 ms a key at 8,000 requests a second cost 40 such calls a second. Its size
follows the key's rate: twice what its life would see, from its own admissions once it has
one (they are not counted one by one) and from the admissions asked of Redis before that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from crossway.limits.base import WINDOW_MS, Admission, as_shown

HOLD_MS = 200  # an allowance's life
MIN_ROOM_REQUESTS = 1_000  # what must be left of a limit for an allowance to be granted
MAX_EXTRA = 4_096  # admissions in one allowance, at most
HOT_PER_BUCKET = 10  # admissions in the last 100 ms that make a key busy (100 a second)
_BUCKET_MS = 100


@dataclass(slots=True)
class Allowance:
    grant_id: str  # the lease of the request that took it; its extras are grant_id:1..n
    keys: list[str]  # the Redis keys at grant time: rpm, conc, tpm, day, month, total
    extra: int  # admissions granted beyond the granting request
    expires_ms: int
    cost_reserve: float | None  # None: the key has no budget
    token_reserve: int | None  # None: the key has no tokens-per-minute limit
    granted_at_ms: int
    requests_remaining: int | None  # as Redis saw them after the grant (extras counted)
    requests_reset_ms: int
    tokens_used: int  # this minute's tokens as Redis saw them before the reserve
    used: int = 0  # extras admitted so far
    cost: float = 0.0  # settled under it
    tokens: int = 0
    open: bool = True
    refilled: bool = False  # the next allowance has been asked for
    # a quarter into its life (which starts HOLD_MS before it expires: a refill is granted
    # before it) or three quarters through its admissions: time to ask for the next, so
    # that the key's requests need not wait for it
    low_at_ms: int = field(init=False)
    low_at_used: int = field(init=False)
    _cost_cap: float = field(init=False, repr=False)
    _token_cap: float = field(init=False, repr=False)
    _reset_at_ms: int = field(init=False, repr=False)
    _admission: Admission | None = field(default=None, init=False, repr=False)
    _admission_from_ms: int = field(default=0, init=False, repr=False)
    _admission_until_ms: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.low_at_ms = self.expires_ms - 3 * HOLD_MS // 4
        self.low_at_used = 3 * self.extra // 4
        # spent past its reserve, it admits no more: a free model's reserve is 0, so its
        # first cost ends it
        self._cost_cap = math.inf if self.cost_reserve is None else self.cost_reserve
        self._token_cap = math.inf if self.token_reserve is None else self.token_reserve
        self._reset_at_ms = self.granted_at_ms + self.requests_reset_ms

    def rate(self, now_ms: int) -> int:
        """Its admissions per 100 ms since its life began: how busy the key is while its
        requests are admitted here (they are not counted one by one)."""
        elapsed = now_ms - (self.expires_ms - HOLD_MS)
        return self.used * _BUCKET_MS // (elapsed if elapsed > 0 else 1)

    def admit(self, now_ms: int, tpm: int | None) -> Admission | None:
        """One more admission, if this allowance still has one. Its headers show the counts
        as Redis holds them (this allowance's admissions and reserve counted as used, which
        is what any other process sees), so they change only with the clock, and only as
        often as the headers show it: one Admission serves every request admitted until
        its headers would read differently. This runs for nearly every request of a busy
        key."""
        if (
            now_ms >= self.expires_ms
            or self.used >= self.extra
            or not self.open
            or self.cost > self._cost_cap
            or self.tokens > self._token_cap
        ):
            return None
        self.used += 1
        admission = self._admission
        if admission is None or not self._admission_from_ms <= now_ms < self._admission_until_ms:
            admission = self._admission = self._as_redis_holds(now_ms, tpm)
        return admission

    def _as_redis_holds(self, now_ms: int, tpm: int | None) -> Admission:
        """The counts as Redis holds them, the resets as the headers show them; kept until
        either reset would show differently (or the allowance ends)."""
        until = self.expires_ms
        remaining, requests_reset = self.requests_remaining, 0
        if remaining is not None:
            requests_reset, same_from = as_shown(max(self._reset_at_ms - now_ms, 0))
            until = min(until, self._reset_at_ms - same_from + 1)
        tokens_remaining, tokens_reset = None, 0
        if tpm is not None:
            tokens_remaining = tpm - self.tokens_used - (self.token_reserve or 0)
            minute_ends_ms = now_ms - now_ms % WINDOW_MS + WINDOW_MS
            tokens_reset, same_from = as_shown(minute_ends_ms - now_ms)
            until = min(until, minute_ends_ms - same_from + 1)
        self._admission_from_ms, self._admission_until_ms = now_ms, max(until, now_ms + 1)
        return Admission(remaining, requests_reset, tokens_remaining, tokens_reset)


class BusyKeys:
    """How busy each key is, to size its first allowance: its admissions asked of Redis in
    the last full 100 ms, or in the current 100 ms so far when that is more (a key that turns
    busy gets allowances within its first few requests, not a bucket later). An allowance's
    admissions are counted when it ends, not one by one; its refills are sized by its own
    rate (`Allowance.rate`)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # key -> [bucket, count in it, count before]

    def count(self, key_id: str, now_ms: int, admissions: int = 1) -> int:
        """Count admissions (one asked of Redis, or an ending allowance's); how busy the key
        is now."""
        bucket = now_ms // _BUCKET_MS
        entry = self._counts.get(key_id)
        if entry is None:
            self._counts[key_id] = [bucket, admissions, 0]
            return admissions
        if bucket > entry[0]:  # an older clock reading counts in the current bucket
            entry[2] = entry[1] if entry[0] == bucket - 1 else 0
            entry[0], entry[1] = bucket, 0
        entry[1] += admissions
        return max(entry[1], entry[2])

    @staticmethod
    def wanted(recent: int) -> int:
        """Extra admissions to ask for: twice what an allowance's life would see at this rate."""
        if recent < HOT_PER_BUCKET:
            return 0
        return min(MAX_EXTRA, max(2, 2 * recent * HOLD_MS // _BUCKET_MS))
