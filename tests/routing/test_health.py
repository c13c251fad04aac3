"""The circuit breaker, the strategies and the retry policy, on their own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import pytest

from crossway.routing import BreakerPolicy, Health, RetryPolicy
from crossway.routing.health import Breaker
from crossway.routing.retry import classify, retry_after_seconds
from crossway.routing.strategies import STRATEGIES


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def dep(**fields: Any) -> Any:
    return SimpleNamespace(breaker=Breaker(), weight=1.0, inverse_weight=1.0, price=0.0, **fields)


def test_consecutive_failures_open_and_a_probe_closes() -> None:
    clock = Clock()
    health = Health(BreakerPolicy(failure_threshold=3, cooldown_seconds=10), clock)
    d = dep()
    for _ in range(2):
        health.failure(d)
    assert health.available(d, clock()) and d.breaker.state == "closed"
    health.failure(d)
    assert d.breaker.state == "open" and not health.available(d, clock())
    clock.now += 10
    assert health.available(d, clock())  # half-open: one probe may go
    health.started(d)
    assert not health.available(d, clock())  # ... and only one
    health.success(d, 12.0)
    health.release(d)
    assert d.breaker.state == "closed" and health.available(d, clock())
    assert d.breaker.in_flight == 0 and d.breaker.latency_ms == 12.0


def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    clock = Clock()
    policy = BreakerPolicy(failure_threshold=1, cooldown_seconds=10, max_cooldown_seconds=25)
    health = Health(policy, clock)
    d = dep()
    health.failure(d)
    waits = []
    for _ in range(3):
        clock.now = d.breaker.open_until
        assert health.available(d, clock())
        health.started(d)
        health.failure(d)
        health.release(d)
        waits.append(d.breaker.open_until - clock.now)
    assert waits == [20, 25, 25]


def test_the_failure_rate_opens_a_breaker_that_never_fails_twice_in_a_row() -> None:
    clock = Clock()
    policy = BreakerPolicy(failure_threshold=5, failure_rate=0.5, min_requests=6, window_seconds=30)
    health = Health(policy, clock)
    d = dep()
    for i in range(6):
        clock.now += 1
        (health.failure if i % 2 else health.success)(d)
    assert d.breaker.state == "open"
    fresh = dep()
    for i in range(6):
        clock.now += 10  # the same pattern, spread beyond the window: never 6 at once
        (health.failure if i % 2 else health.success)(fresh)
    assert fresh.breaker.state == "closed"


def test_an_opening_shared_by_another_gateway_is_honoured() -> None:
    clock = Clock()
    health = Health(BreakerPolicy(), clock)
    d = dep()
    health.open_until(d, clock() + 5)
    assert not health.available(d, clock())
    clock.now += 5
    assert health.available(d, clock())


def test_strategies_order_by_what_they_measure() -> None:
    rnd = random.Random(1)
    a, b, c = dep(name="a"), dep(name="b"), dep(name="c")
    a.breaker.in_flight, b.breaker.in_flight, c.breaker.in_flight = 5, 0, 2
    assert [d.name for d in STRATEGIES["least-busy"]([a, b, c], rnd)] == ["b", "c", "a"]
    a.breaker.latency_ms, b.breaker.latency_ms, c.breaker.latency_ms = 80.0, 120.0, None
    assert [d.name for d in STRATEGIES["lowest-latency"]([a, b, c], rnd)] == ["c", "a", "b"]
    a.price, b.price, c.price = 15.0, 0.75, 3.0
    assert [d.name for d in STRATEGIES["lowest-cost"]([a, b, c], rnd)] == ["b", "c", "a"]
    a.weight, a.inverse_weight = 9.0, 1 / 9.0
    firsts = [STRATEGIES["weighted"]([a, b], rnd)[0].name for _ in range(2000)]
    assert 1650 < firsts.count("a") < 1950  # 9:1


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "retry"),
        (408, "retry"),
        (500, "retry"),
        (529, "retry"),
        (401, "failover"),
        (403, "failover"),
        (400, "final"),
        (404, "final"),
        (422, "final"),
    ],
)
def test_classify(status: int, kind: str) -> None:
    assert classify(status) == kind


def test_retry_after_forms_and_the_backoff() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=2.0, jitter=0.0, max_retry_after=10)
    rnd = random.Random(0)
    assert [policy.backoff(n, None, rnd) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    assert policy.backoff(1, 4.0, rnd) == 4.0  # at least what the upstream asked
    assert policy.backoff(1, 11.0, rnd) is None  # too long: go elsewhere
    jittered = RetryPolicy(backoff_initial=1.0, jitter=0.25)
    assert all(0.75 <= (jittered.backoff(1, None, rnd) or 0) <= 1.0 for _ in range(100))
