"""When to try again, and how long to wait first.

A failed attempt is one of three kinds:
- retry:    429, 408 and 5xx answers, timeouts and connection failures. The next deployment
            is tried at once; when every deployment of the model failed, all of them again
            after a backoff, `retries` times; then the fallback models.
- failover: the upstream refused Crossway's own credentials (401/403): another deployment
            (another account) may work, this one will not on a retry.
- final:    any other 4xx. The request itself is wrong; no other deployment would take it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

Kind = Literal["retry", "failover", "final"]


def classify(status: int) -> Kind:
    if status in (408, 429) or status >= 500:
        return "retry"
    if status in (401, 403):
        return "failover"
    return "final"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, or `retry-after` in seconds or as an HTTP date; None if absent."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(raw).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2
    backoff_initial: float = 0.25
    backoff_max: float = 4.0
    jitter: float = 0.25
    max_retry_after: float = 10.0

    def backoff(self, retry: int, retry_after: float | None, rnd: random.Random) -> float | None:
        """Seconds to wait before retry number `retry` (1, 2, …), at least what the upstream
        asked for; None when it asked for longer than `max_retry_after` (do not retry)."""
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        wait: float = min(self.backoff_initial * 2.0 ** (retry - 1), self.backoff_max)
        wait *= 1.0 - self.jitter * rnd.random()
        return max(wait, retry_after or 0.0)
