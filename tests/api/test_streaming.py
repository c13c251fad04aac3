"""Streams are forwarded as they arrive, and a client that leaves cancels the upstream."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
from conftest import MASTER_KEY, RunningGateway

from crossway.testing import SimulatedUpstream

USER = [{"role": "user", "content": "hi"}]


def wait_until(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@contextlib.contextmanager
def open_stream(gateway: RunningGateway, body: dict[str, Any]) -> Iterator[httpx.Response]:
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            gateway.base_url + "/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
        ) as resp,
    ):
        yield resp


def test_events_reach_the_client_while_the_upstream_is_still_streaming(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": USER,
        "stream": True,
        "simulate": {"chunks": 20, "chunk_delay_ms": 100},
    }
    with open_stream(gateway, body) as resp:
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        assert '"role":"assistant"' in first
        # the upstream has ~2 s of chunks left: nothing was buffered until its end
        assert upstream.active == 1
        rest = [line for line in lines if line.startswith("data:")]
    assert rest[-1] == "data: [DONE]"
    assert upstream.active == 0


def test_client_disconnect_cancels_the_upstream_request(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    cancelled_before = upstream.cancelled
    body = {
        "model": "gpt-4o-mini",
        "messages": USER,
        "stream": True,
        "simulate": {"chunks": 200, "chunk_delay_ms": 50},
    }
    with open_stream(gateway, body) as resp:
        request_id = resp.headers["x-request-id"]
        lines = resp.iter_lines()
        next(line for line in lines if '"content":"' in line)
        assert upstream.active == 1
    # leaving the block closed the connection mid-stream
    assert wait_until(lambda: upstream.cancelled == cancelled_before + 1)
    assert upstream.active == 0
    event = gateway.event(request_id)
    assert event.status == 499 and event.error_type == "client_closed"
    assert event.ttft_ms is not None


def test_client_leaving_before_the_answer_cancels_the_upstream(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    import pytest

    for stream in (False, True):
        before = upstream.cancelled
        closed_before = sum(e.status == 499 for e in gateway.usage.events)
        body = {
            "model": "gpt-4o-mini",
            "messages": USER,
            "stream": stream,
            "simulate": {"latency_ms": 3000},
        }
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as http:
            http.post(
                gateway.base_url + "/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {MASTER_KEY}"},
            )
        assert wait_until(lambda b=before: upstream.cancelled == b + 1), stream
        assert wait_until(lambda: upstream.active == 0)
        assert wait_until(
            lambda n=closed_before: sum(e.status == 499 for e in gateway.usage.events) == n + 1
        )
        closed = [e for e in gateway.usage.events if e.status == 499]
        assert closed[-1].stream == stream and closed[-1].error_type == "client_closed"
