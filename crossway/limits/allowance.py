"""Allowances: a block of admissions one gateway process may make for a busy key on its own.

A key that is far from all of its limits and sends many requests would otherwise cost one
Redis round trip per request. Instead, the request that finds the key busy asks Redis for
itself and for up to a few hundred more admissions at once (`RedisLimiter`'s grant script),
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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crossway.limits.base import Admission

HOLD_MS = 50  # an allowance's life
MIN_ROOM_REQUESTS = 1_000  # what must be left of a limit for an allowance to be granted
MAX_EXTRA = 512  # admissions in one allowance, at most
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
    # four fifths through its life or its admissions: time to ask for the next, so that the
    # key's requests need not wait for it
    low_at_ms: int = field(init=False)
    low_at_used: int = field(init=False)

    def __post_init__(self) -> None:
        self.low_at_ms = self.granted_at_ms + 4 * (self.expires_ms - self.granted_at_ms) // 5
        self.low_at_used = 4 * self.extra // 5

    def running_low(self, now_ms: int) -> bool:
        return now_ms >= self.low_at_ms or self.used >= self.low_at_used

    def take(self, now_ms: int) -> bool:
        """One more admission, if this allowance still has one."""
        if not self.open or now_ms >= self.expires_ms or self.used >= self.extra:
            return False
        # spent past its reserve: a free model's reserve is 0, so its first cost ends it
        if self.cost_reserve is not None and self.cost > self.cost_reserve:
            return False
        if self.token_reserve is not None and self.tokens > self.token_reserve:
            return False
        self.used += 1
        return True

    def admission(self, now_ms: int, tpm: int | None, window_ms: int) -> Admission:
        """The headers of a request admitted under it, as if Redis had been asked."""
        out = Admission()
        if self.requests_remaining is not None:
            out.requests_remaining = self.requests_remaining + self.extra - self.used
            out.requests_reset_ms = max(self.requests_reset_ms - (now_ms - self.granted_at_ms), 0)
        if tpm is not None:
            out.tokens_remaining = tpm - self.tokens_used - self.tokens
            out.tokens_reset_ms = window_ms - now_ms % window_ms
        return out


class BusyKeys:
    """How busy each key is, to size its allowances: its admissions in the last full 100 ms,
    or in the current 100 ms so far when that is more (a key that turns busy gets allowances
    within its first few requests, not a bucket later)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # key -> [bucket, count in it, count before]

    def count(self, key_id: str, now_ms: int) -> int:
        """Count one admission; how busy the key is now."""
        bucket = now_ms // _BUCKET_MS
        entry = self._counts.get(key_id)
        if entry is None:
            self._counts[key_id] = [bucket, 1, 0]
            return 1
        if bucket > entry[0]:  # an older clock reading counts in the current bucket
            entry[2] = entry[1] if entry[0] == bucket - 1 else 0
            entry[0], entry[1] = bucket, 0
        entry[1] += 1
        return max(entry[1], entry[2])

    def recent(self, key_id: str) -> int:
        """How busy the key was at its last admission."""
        entry = self._counts.get(key_id)
        return 0 if entry is None else max(entry[1], entry[2])

    @staticmethod
    def wanted(recent: int) -> int:
        """Extra admissions to ask for: twice what an allowance's life would see at this rate."""
        if recent < HOT_PER_BUCKET:
            return 0
        return min(MAX_EXTRA, max(2, 2 * recent * HOLD_MS // _BUCKET_MS))
