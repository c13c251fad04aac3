"""Deployment health: a circuit breaker per deployment, and what the strategies measure.

closed     requests flow; failures are counted in a sliding window
open       after `failure_threshold` failures in a row, or a failure rate of `failure_rate`
           over at least `min_requests` in `window_seconds`: no traffic for the cool-down
half-open  the cool-down is over: one probe request at a time is let through; its success
           closes the breaker, its failure opens it again for twice as long (up to a cap)

Each process keeps its own counts; with Redis, an opened breaker is shared (see
`routing.shared`), so every gateway stops sending to a deployment one of them found broken.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from crossway.routing.deployments import Deployment

State = Literal["closed", "open", "half_open"]
_EWMA = 0.2  # weight of the newest latency in the moving average


@dataclass(slots=True)
class Breaker:
    state: State = "closed"
    open_until: float = 0.0  # monotonic time the cool-down ends
    cooldown: float = 0.0  # the current cool-down (doubles on failed probes)
    consecutive_failures: int = 0
    probing: bool = False  # a half-open probe is in flight
    in_flight: int = 0
    latency_ms: float | None = None  # moving average of successful attempts
    # (monotonic time, ok) of recent outcomes, pruned to the window
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    opened: int = 0  # times opened, for the admin view


@dataclass(slots=True)
class BreakerPolicy:
    failure_threshold: int = 3
    failure_rate: float = 0.5
    min_requests: int = 10
    window_seconds: float = 30.0
    cooldown_seconds: float = 30.0
    max_cooldown_seconds: float = 300.0


class Health:
    """Outcomes in, availability out. `on_open` hears of every breaker this process opens."""

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.on_open: Callable[[Deployment, float], None] | None = None
        self.on_close: Callable[[Deployment], None] | None = None

    # --- what the router asks --------------------------------------------------------------

    def available(self, dep: Deployment, now: float) -> bool:
        """May a request go to this deployment now? (A half-open one takes one probe.)"""
        b = dep.breaker
        if b.state == "closed":
            return True
        if b.state == "open":
            if now < b.open_until:
                return False
            b.state = "half_open"
        return not b.probing

    # --- what the relay reports ------------------------------------------------------------

    def started(self, dep: Deployment) -> None:
        b = dep.breaker
        b.in_flight += 1
        if b.state == "half_open":
            b.probing = True

    def release(self, dep: Deployment) -> None:
        """The request `started` on this deployment is over (answered, failed or abandoned)."""
        b = dep.breaker
        b.in_flight = max(b.in_flight - 1, 0)

    def success(self, dep: Deployment, latency_ms: float | None = None) -> None:
        b = dep.breaker
        b.consecutive_failures = 0
        if latency_ms is not None:
            b.latency_ms = (
                latency_ms
                if b.latency_ms is None
                else _EWMA * latency_ms + (1 - _EWMA) * b.latency_ms
            )
        self._record(b, True)
        if b.state != "closed":
            b.state, b.probing, b.cooldown = "closed", False, 0.0
            if self.on_close is not None:
                self.on_close(dep)

    def failure(self, dep: Deployment) -> None:
        b = dep.breaker
        b.consecutive_failures += 1
        self._record(b, False)
        policy = self.policy
        if b.state == "half_open":
            self._open(dep, min(max(b.cooldown * 2, policy.cooldown_seconds),
                                policy.max_cooldown_seconds))  # fmt: skip
            return
        if b.state == "open":
            return
        failed = sum(1 for _, ok in b.outcomes if not ok)
        if b.consecutive_failures >= policy.failure_threshold or (
            len(b.outcomes) >= policy.min_requests
            and failed / len(b.outcomes) >= policy.failure_rate
        ):
            self._open(dep, policy.cooldown_seconds)

    def abandoned(self, dep: Deployment) -> None:
        """An attempt that ended without a verdict (the client left): let another probe."""
        dep.breaker.probing = False

    def open_until(self, dep: Deployment, until: float) -> None:
        """Another gateway opened this breaker (shared state): honour it here too."""
        b = dep.breaker
        if b.state == "open" and b.open_until >= until:
            return
        b.state, b.open_until, b.probing = "open", until, False
        b.cooldown = max(b.cooldown, until - self.clock())

    # --- inside ----------------------------------------------------------------------------

    def _open(self, dep: Deployment, cooldown: float) -> None:
        b = dep.breaker
        b.state, b.probing, b.cooldown = "open", False, cooldown
        b.open_until = self.clock() + cooldown
        b.opened += 1
        b.consecutive_failures = 0
        if self.on_open is not None:
            self.on_open(dep, cooldown)

    def _record(self, b: Breaker, ok: bool) -> None:
        now = self.clock()
        outcomes = b.outcomes
        outcomes.append((now, ok))
        horizon = now - self.policy.window_seconds
        while outcomes and outcomes[0][0] < horizon:
            outcomes.popleft()

    def snapshot(self, dep: Deployment) -> dict[str, object]:
        """The admin view of one deployment."""
        b = dep.breaker
        now = self.clock()
        horizon = now - self.policy.window_seconds
        recent = [ok for t, ok in b.outcomes if t >= horizon]
        state = b.state
        if state == "open" and now >= b.open_until:
            state = "half_open"
        return {
            "state": state,
            "open_for_seconds": round(max(b.open_until - now, 0.0), 3) if state == "open" else 0,
            "in_flight": b.in_flight,
            "latency_ms": round(b.latency_ms, 3) if b.latency_ms is not None else None,
            "recent_requests": len(recent),
            "recent_errors": recent.count(False),
            "error_rate": round(recent.count(False) / len(recent), 3) if recent else 0.0,
            "consecutive_failures": b.consecutive_failures,
            "times_opened": b.opened,
        }
