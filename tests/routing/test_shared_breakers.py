"""Two gateways on one Redis: a breaker one of them opens keeps the other away too."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import (
    MASTER_KEY,
    REDIS_URL,
    UPSTREAM_KEY,
    BackgroundLoop,
    RunningGateway,
    start_gateway,
)

from crossway.testing import SimulatedUpstream


@pytest.fixture
def pair(background: BackgroundLoop, upstream: SimulatedUpstream) -> Iterator[list[RunningGateway]]:
    url = upstream.base_url
    settings: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "log_requests": False,
        "redis_url": REDIS_URL,
        "redis_prefix": f"cwtest{os.getpid()}x{time.time_ns() % 10**8}",
        "providers": {
            "broken": {
                "type": "openai-compatible",
                "base_url": f"{url}/v1",
                "api_key": UPSTREAM_KEY,
                "headers": {"x-simulate": '{"status": 500}'},
            },
            "ok": {"type": "openai-compatible", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY},
        },
        "models": {
            "pair-model": {
                "deployments": [
                    {"provider": "broken", "model": "sim", "priority": 0},
                    {"provider": "ok", "model": "sim", "priority": 1},
                ]
            }
        },
        "routing": {"failure_threshold": 3, "cooldown_seconds": 30, "retries": 0},
    }
    gateways = [start_gateway(background, settings), start_gateway(background, settings)]
    yield gateways
    for gw in gateways:
        gw.stop()


def breaker_of(gw: RunningGateway) -> Any:
    deps = gw.services.table.deployments["pair-model"]
    return next(d for d in deps if d.provider.name == "broken").breaker


def test_an_opened_breaker_reaches_the_other_gateway(pair: list[RunningGateway]) -> None:
    first, second = pair
    body = {"model": "pair-model", "messages": [{"role": "user", "content": "x"}]}
    auth = {"authorization": f"Bearer {MASTER_KEY}"}
    for _ in range(3):  # three failures in a row, each covered by the healthy deployment
        resp = httpx.post(f"{first.base_url}/chat/completions", json=body, headers=auth)
        assert resp.status_code == 200 and resp.headers["x-crossway-attempts"] == "2"
    assert breaker_of(first).state == "open"
    assert breaker_of(second).state == "closed"
    deadline = time.monotonic() + 5
    while breaker_of(second).state != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert breaker_of(second).state == "open"  # it never sent a request there itself
    resp = httpx.post(f"{second.base_url}/chat/completions", json=body, headers=auth)
    assert resp.status_code == 200 and resp.headers["x-crossway-attempts"] == "1"
    assert resp.headers["x-crossway-provider"] == "ok"
