"""The limiter interface: admit a request under a key's limits, then settle what it used.

Limits per key: requests per minute (a sliding window: never more than `rpm` in any 60 s),
tokens per minute (a fixed calendar minute: tokens are only known after the answer), requests
at once (leases that expire if a process dies holding them), and budgets in USD per UTC day,
UTC month and in total. A budget is checked before a request and charged after it, so it is
exceeded by at most the requests in flight when it ran out.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from crossway.errors import GatewayError

WINDOW_MS = 60_000
LEASE_MS = 15 * 60_000  # a request holding a concurrency slot longer than this lets it go


_REQUESTS_LEFT = b"x-ratelimit-remaining-requests: %d\r\nx-ratelimit-reset-requests: %b\r\n"
_TOKENS_LEFT = b"x-ratelimit-remaining-tokens: %d\r\nx-ratelimit-reset-tokens: %b\r\n"


@dataclass(frozen=True, slots=True)
class Quota:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    budget_daily: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None
    # the x-ratelimit-limit-* header lines, made once: every limited answer sends them
    limit_lines: tuple[bytes | None, bytes | None] = field(init=False, compare=False, repr=False)
    # with both limits, all six lines with the limits filled in, the rest left to fill
    six_lines: bytes | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        requests = None if self.rpm is None else b"x-ratelimit-limit-requests: %d\r\n" % self.rpm
        tokens = None if self.tpm is None else b"x-ratelimit-limit-tokens: %d\r\n" % self.tpm
        object.__setattr__(self, "limit_lines", (requests, tokens))
        six = None
        if requests is not None and tokens is not None:
            six = requests + _REQUESTS_LEFT + tokens + _TOKENS_LEFT
        object.__setattr__(self, "six_lines", six)

    @property
    def unlimited(self) -> bool:
        return (
            self.rpm is None
            and self.tpm is None
            and self.concurrency is None
            and self.budget_daily is None
            and self.budget_monthly is None
            and self.budget_total is None
        )


@dataclass(frozen=True, slots=True)
class Spend:
    daily: float
    monthly: float
    total: float


class Settlement(NamedTuple):
    key_id: str
    lease: str
    tokens: int
    cost: float
    now_ms: int


class Admission(NamedTuple):
    """What an admitted request reports back in its headers (None: no such limit). A tuple:
    cheap to make, and shared by an allowance's requests until its headers would change."""

    requests_remaining: int | None = None
    requests_reset_ms: int = 0
    tokens_remaining: int | None = None
    tokens_reset_ms: int = 0


class Limiter(Protocol):
    async def admit(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission:
        """Admit or raise `RateLimited` / `BudgetExceeded`; on admission take a slot."""
        ...

    def admit_here(self, key_id: str, quota: Quota, lease: str, now_ms: int) -> Admission | None:
        """`admit` without waiting, when this limiter can decide without I/O (in-process
        counts, an open allowance); None when it cannot: then `admit` asks the store."""
        ...

    async def settle(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> None:
        """Give the slot back and charge the tokens and cost."""
        ...

    async def settle_many(self, items: list[Settlement]) -> None:
        """Settle a batch at once (one round trip where the backend allows)."""
        ...

    def settle_here(self, key_id: str, lease: str, tokens: int, cost: float, now_ms: int) -> bool:
        """Settle at once if that needs no I/O (in-process counts, an open allowance); False
        if it must go to the store with `settle_many`."""
        ...

    async def spend(self, key_id: str, now_ms: int) -> Spend: ...

    async def seed(
        self,
        daily: dict[str, float],
        monthly: dict[str, float],
        total: dict[str, float],
        now_ms: int,
    ) -> None:
        """Start the budget counters from the ledger (kept where already present)."""
        ...

    async def close(self) -> None: ...


class RateLimited(GatewayError):
    status = 429
    kind = "rate_limit_error"


class BudgetExceeded(GatewayError):
    status = 402
    kind = "budget_exceeded"


_period_ids: tuple[int, str, str] = (-1, "", "")


def _ids(now_ms: int) -> tuple[int, str, str]:
    # formatting a date per request shows in profiles: once a second is enough
    global _period_ids
    second = now_ms // 1000
    if _period_ids[0] != second:
        moment = dt.datetime.fromtimestamp(second, dt.UTC)
        _period_ids = (second, moment.strftime("%Y%m%d"), moment.strftime("%Y%m"))
    return _period_ids


def day_id(now_ms: int) -> str:
    return _ids(now_ms)[1]


def month_id(now_ms: int) -> str:
    return _ids(now_ms)[2]


def period_start(now_ms: int, period: str) -> dt.datetime:
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    if period == "daily":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_reset(now_ms: int, period: str) -> dt.datetime | None:
    start = period_start(now_ms, period)
    if period == "daily":
        return start + dt.timedelta(days=1)
    if period == "monthly":
        return (start + dt.timedelta(days=32)).replace(day=1)
    return None


def budget_error(period: str, budget: float, spent: float, now_ms: int) -> BudgetExceeded:
    reset = next_reset(now_ms, period)
    when = (
        f"it resets at {reset.isoformat().replace('+00:00', 'Z')}"
        if reset
        else "it does not reset: raise the budget to go on"
    )
    return BudgetExceeded(
        f"the key's {period} budget of ${budget:g} is spent (${spent:.6f} used); {when}",
        code=f"{period}_budget_exceeded",
        retryable=False,
    )


def rate_error(
    what: str, limit: int, reset_ms: int, admission: Admission, quota: Quota
) -> RateLimited:
    seconds = max(1, math.ceil(reset_ms / 1000))
    headers = {"retry-after": str(seconds), **ratelimit_headers(admission, quota)}
    nouns = {
        "rpm": "requests per minute",
        "tpm": "tokens per minute",
        "concurrency": "requests at once",
    }
    return RateLimited(
        f"rate limit reached: {limit} {nouns[what]} for this key; try again in {seconds} s",
        code=f"{what}_limit_exceeded",
        headers=headers,
    )


def duration(ms: int) -> str:
    """OpenAI's reset format: '1s', '6m0s', '250ms'."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = math.ceil(ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def as_shown(ms: int) -> tuple[int, int]:
    """A reset as `duration` shows it, in ms (from 1 s on, whole seconds rounded up), and
    the least reset that shows the same: an allowance keeps one Admission between the two."""
    if ms < 1000:
        shown = ms if ms > 0 else 0
        return shown, shown
    seconds = -(-ms // 1000)
    return seconds * 1000, max((seconds - 1) * 1000 + 1, 1000)


# the last admission's header lines: an allowance gives its requests the same Admission until
# its headers would read differently (the reference held here keeps its id from being reused)
_last_lines: tuple[Admission | None, Quota | None, bytes] = (None, None, b"")


def ratelimit_head_lines(a: Admission, quota: Quota) -> bytes:
    """`ratelimit_headers` of an admitted request as the header lines an answer sends
    (each ending in CRLF), made with as little work as can be: this runs on every request
    of a limited key. Numbers and fixed names only: safe to write as they are."""
    global _last_lines
    if a is _last_lines[0] and quota is _last_lines[1]:  # an allowance's, shared
        return _last_lines[2]
    requests_left, requests_reset, tokens_left, tokens_reset = a
    six = quota.six_lines
    if six is not None and requests_left is not None and tokens_left is not None:
        out = six % (
            requests_left if requests_left > 0 else 0,
            _duration_bytes(requests_reset),
            tokens_left if tokens_left > 0 else 0,
            _duration_bytes(tokens_reset),
        )
        _last_lines = (a, quota, out)
        return out
    requests, tokens = quota.limit_lines
    out = b""
    if requests is not None:
        out = requests
        if a.requests_remaining is not None:
            out += _REQUESTS_LEFT % (
                max(a.requests_remaining, 0),
                _duration_bytes(a.requests_reset_ms),
            )
    if tokens is not None:
        out += tokens
        if a.tokens_remaining is not None:
            out += _TOKENS_LEFT % (max(a.tokens_remaining, 0), _duration_bytes(a.tokens_reset_ms))
    return out


# duration() as bytes, made once per value: resets are under a day, so at most 1,000
# millisecond values and 86,400 second values
_durations: dict[int, bytes] = {}  # ms below 1000 as themselves, longer as -(whole seconds)


def _duration_bytes(ms: int) -> bytes:
    # a second count goes in as -(whole seconds, rounded up): apart from the millisecond slots
    slot = (ms if ms > 0 else 0) if ms < 1000 else ms // -1000
    text = _durations.get(slot)
    if text is None:
        text = _durations[slot] = duration(ms).encode()
    return text


def ratelimit_headers(a: Admission, quota: Quota | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if quota is None or quota.rpm is not None:
        if quota is not None:
            out["x-ratelimit-limit-requests"] = str(quota.rpm)
        if a.requests_remaining is not None:
            out["x-ratelimit-remaining-requests"] = str(max(a.requests_remaining, 0))
            out["x-ratelimit-reset-requests"] = duration(a.requests_reset_ms)
    if quota is None or quota.tpm is not None:
        if quota is not None:
            out["x-ratelimit-limit-tokens"] = str(quota.tpm)
        if a.tokens_remaining is not None:
            out["x-ratelimit-remaining-tokens"] = str(max(a.tokens_remaining, 0))
            out["x-ratelimit-reset-tokens"] = duration(a.tokens_reset_ms)
    return out
