"""The fault matrix: each upstream failure the simulated upstream can stage, through the
gateway, with what the client sees, what the usage record says, and nothing left behind.

Every request here uses a virtual key allowed one request at a time (`max_concurrency: 1`):
a concurrency slot that leaked would refuse the next request with 429. After each case the
gateway's tasks, the deployments' in-flight counts and the upstream's open answers must be
back where they were.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import MASTER_KEY, UPSTREAM_KEY, BackgroundLoop, RunningGateway, start_gateway

from crossway.testing import SimulatedUpstream

FAULTS: dict[str, dict[str, Any] | None] = {
    "ok": None,
    "storm": {"status": 429, "retry_after": 0.05},
    "storm-long": {"status": 429, "retry_after": 30},
    "burst500": {"fail_first": 2, "fail_key": "burst500"},
    "burst503": {"fail_first": 2, "fail_key": "burst503", "fail_status": 503},
    "hang": {"hang": True},
    "slow-first": {"ttfb_ms": 1500},
    "cut": {"cut_after": 3, "chunks": 10},
    "malformed": {"malformed": True},
    "flap": {"flap": [3, 2], "fail_key": "flap"},
    "always500": {"status": 500},
    "badkey": {"status": 401},
    "badrequest": {"status": 400, "message": "messages: bad"},
    "stall": {"chunks": 6, "chunk_delay_ms": 800},
    "slow": {"chunks": 40, "chunk_delay_ms": 50},
}
# model -> its deployments (provider names), tried in this order (priorities)
MODELS: dict[str, list[str]] = {
    "ok-model": ["ok"],
    "storm-only": ["storm"],
    "storm-then-ok": ["storm", "ok"],
    "storm-long": ["storm-long"],
    "burst500": ["burst500"],
    "burst503": ["burst503"],
    "refused-then-ok": ["refused", "ok"],
    "refused-only": ["refused"],
    "dns-only": ["dns"],
    "hang-then-ok": ["hang", "ok"],
    "hang-only": ["hang"],
    "slow-then-ok": ["slow-first", "ok"],
    "cut-then-ok": ["cut", "ok"],
    "malformed-then-ok": ["malformed", "ok"],
    "flappy": ["flap", "ok"],
    "badkey-then-ok": ["badkey", "ok"],
    "bad-request": ["badrequest", "ok"],
    "stall-then-ok": ["stall", "ok"],
    "slow-stream": ["slow"],
}


@pytest.fixture(scope="module")
def resilient(background: BackgroundLoop, upstream: SimulatedUpstream) -> Iterator[RunningGateway]:
    url = upstream.base_url
    quick = {"connect": 1.0, "first_byte": 0.3, "read": 0.3}
    providers: dict[str, Any] = {
        name: {
            "type": "openai-compatible",
            "base_url": f"{url}/v1",
            "api_key": UPSTREAM_KEY,
            "headers": {"x-simulate": json.dumps(fault)} if fault else {},
            "timeout": quick,
        }
        for name, fault in FAULTS.items()
    }
    providers["refused"] = {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}
    providers["dns"] = {"type": "openai-compatible", "base_url": "http://crossway-test.invalid/v1"}
    models = {
        model: {
            "deployments": [
                {"provider": p, "model": "sim", "priority": i} for i, p in enumerate(chain)
            ]
        }
        for model, chain in MODELS.items()
    }
    settings = {
        "master_key": MASTER_KEY,
        "log_requests": False,
        "providers": providers,
        "models": models,
        "routing": {
            "retries": 2,
            "backoff_initial": 0.01,
            "backoff_max": 0.02,
            "jitter": 0,
            "max_retry_after": 1.0,
            "failure_threshold": 3,
            "min_requests": 1000,
            "cooldown_seconds": 0.4,
            "max_cooldown_seconds": 0.8,
        },
    }
    running = start_gateway(background, settings)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def one_at_a_time(resilient: RunningGateway) -> str:
    """A virtual key that may have a single request in flight."""
    created = httpx.post(
        f"{resilient.root}/admin/keys",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"name": "fault-matrix", "limits": {"max_concurrency": 1}},
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def _serves_requests(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None)
    where = code.co_filename if code is not None else ""
    name = getattr(coro, "__qualname__", "")
    return name == "Exchange.run" or any(
        part in where for part in ("crossway/api/", "crossway/providers/", "crossway/routing/")
    )


class Leaks:
    """What must be back where it was after each case."""

    def __init__(self, gw: RunningGateway, upstream: SimulatedUpstream) -> None:
        self.gw, self.upstream = gw, upstream
        self.tasks = self._tasks()

    def _tasks(self) -> int:
        """Tasks that serve requests: the server's per-request tasks and anything started by
        the front doors, the relay or the transports (the gateway's long-lived background
        jobs and the simulated upstream's connections are not counted)."""

        async def count() -> int:
            return sum(1 for t in asyncio.all_tasks() if _serves_requests(t))

        return self.gw.background.run(count())

    def in_flight(self) -> int:
        groups = self.gw.services.table.deployments.values()
        return sum(d.breaker.in_flight for group in groups for d in group)

    def sockets(self) -> int:
        """Upstream connections taken for a request and neither given back nor closed."""
        return sum(t.busy_connections() for t in self.gw.services.transports.values())

    def check(self) -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if (
                self._tasks() <= self.tasks
                and self.in_flight() == 0
                and self.sockets() == 0
                and not self.upstream.active
            ):
                return
            time.sleep(0.02)

        async def names() -> list[str]:
            return [repr(t.get_coro()) for t in asyncio.all_tasks() if _serves_requests(t)]

        raise AssertionError(
            f"left behind: tasks {self.gw.background.run(names())} (was {self.tasks}), in flight "
            f"{self.in_flight()}, busy sockets {self.sockets()}, upstream answers still open "
            f"{self.upstream.active}"
        )


@pytest.fixture
def leaks(resilient: RunningGateway, upstream: SimulatedUpstream) -> Iterator[Leaks]:
    upstream.reset_counts()
    watch = Leaks(resilient, upstream)
    yield watch
    watch.check()


def post(
    gw: RunningGateway, key: str, model: str, stream: bool = False, **extra: Any
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={**body, **extra},
        timeout=30,
    )


def record(gw: RunningGateway, resp: httpx.Response) -> Any:
    return gw.event(resp.headers["x-request-id"])


def test_429_storm_is_retried_with_backoff_then_returned(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    started = time.monotonic()
    resp = post(resilient, one_at_a_time, "storm-only")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "0.05"
    assert time.monotonic() - started >= 0.1  # two waits of at least the retry-after
    event = record(resilient, resp)
    assert event.attempts == 3 and event.status == 429 and event.error_type == "rate_limit_error"
    # with a healthy deployment behind it, the client never sees the storm
    ok = post(resilient, one_at_a_time, "storm-then-ok")
    assert ok.status_code == 200 and ok.headers["x-crossway-attempts"] == "2"
    assert ok.headers["x-crossway-provider"] == "ok"
    assert record(resilient, ok).attempts == 2


def test_a_retry_after_too_long_goes_to_the_fallback_model(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    started = time.monotonic()
    resp = post(resilient, one_at_a_time, "storm-long")
    assert resp.status_code == 429 and time.monotonic() - started < 1  # no 30 s wait
    assert record(resilient, resp).attempts == 1
    fallback = post(resilient, one_at_a_time, "storm-long", models=["storm-long", "ok-model"])
    assert fallback.status_code == 200
    assert fallback.json()["model"] == "sim" and fallback.headers["x-crossway-model"] == "ok-model"
    event = record(resilient, fallback)
    assert (event.model_requested, event.model, event.attempts) == ("storm-long", "ok-model", 2)


@pytest.mark.parametrize("model", ["burst500", "burst503"])
def test_5xx_bursts_are_ridden_out(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks, model: str
) -> None:
    resp = post(resilient, one_at_a_time, model)
    assert resp.status_code == 200 and resp.headers["x-crossway-attempts"] == "3"
    assert record(resilient, resp).status == 200


def test_connection_refused_and_dns_failure(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    ok = post(resilient, one_at_a_time, "refused-then-ok")
    assert ok.status_code == 200 and ok.headers["x-crossway-provider"] == "ok"
    for model, words in (("refused-only", "connection failed"), ("dns-only", "did not resolve")):
        resp = post(resilient, one_at_a_time, model)
        assert resp.status_code == 503 and words in resp.json()["error"]["message"]
        assert resp.headers["x-should-retry"] == "false"  # Crossway retried already
        event = record(resilient, resp)
        assert event.attempts == 3 and event.error_type == "upstream_unavailable"


def test_a_hang_before_headers_times_out_and_fails_over(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    ok = post(resilient, one_at_a_time, "hang-then-ok")
    assert ok.status_code == 200 and ok.headers["x-crossway-provider"] == "ok"
    started = time.monotonic()
    resp = post(resilient, one_at_a_time, "hang-only")
    assert resp.status_code == 504 and time.monotonic() - started < 3
    assert record(resilient, resp).error_type == "upstream_timeout"


def test_a_slow_first_byte_fails_over_before_the_stream_starts(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    resp = post(resilient, one_at_a_time, "slow-then-ok", stream=True)
    assert resp.status_code == 200 and resp.headers["x-crossway-provider"] == "ok"
    assert resp.text.rstrip().endswith("data: [DONE]")
    assert record(resilient, resp).attempts == 2


def test_a_stream_cut_midway_ends_with_an_error_event(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    resp = post(resilient, one_at_a_time, "cut-then-ok", stream=True)
    assert resp.status_code == 200 and resp.headers["x-crossway-provider"] == "cut"
    last = [e for e in resp.text.split("\n\n") if e.strip()][-1]
    assert '"error"' in last  # after the first byte there is no failover, only the truth
    event = record(resilient, resp)
    assert event.status == 502 and event.attempts == 1
    client = openai.OpenAI(base_url=resilient.base_url, api_key=one_at_a_time, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="cut-then-ok", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


def test_a_malformed_body_fails_over(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    resp = post(resilient, one_at_a_time, "malformed-then-ok")
    assert resp.status_code == 200 and resp.headers["x-crossway-provider"] == "ok"


def test_refused_credentials_fail_over_and_bad_requests_do_not(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    ok = post(resilient, one_at_a_time, "badkey-then-ok")
    assert ok.status_code == 200 and ok.headers["x-crossway-attempts"] == "2"
    bad = post(resilient, one_at_a_time, "bad-request")
    assert bad.status_code == 400 and bad.headers["x-should-retry"] == "false"
    assert record(resilient, bad).attempts == 1  # the request is wrong everywhere


def test_a_flapping_deployment_is_taken_out_and_comes_back(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    deployments = resilient.services.table.deployments["flappy"]
    flappy = next(d for d in deployments if d.provider.name == "flap")
    served = []
    for _ in range(12):
        resp = post(resilient, one_at_a_time, "flappy")
        assert resp.status_code == 200  # the healthy deployment covers every failure
        served.append(resp.headers["x-crossway-provider"])
    assert flappy.breaker.opened >= 1 and "ok" in served
    view = httpx.get(
        f"{resilient.root}/admin/deployments", headers={"authorization": f"Bearer {MASTER_KEY}"}
    ).json()
    row = next(r for r in view["data"] if r["model"] == "flappy" and r["provider"] == "flap")
    assert row["times_opened"] >= 1 and row["recent_errors"] >= 3
    # after the cool-down a probe goes to it; the flap's successes close it again
    time.sleep(0.9)
    for _ in range(6):
        assert post(resilient, one_at_a_time, "flappy").status_code == 200
        if flappy.breaker.state == "closed":
            break
        time.sleep(0.45)
    assert flappy.breaker.state == "closed"


def test_silence_between_chunks_ends_the_stream(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    resp = post(resilient, one_at_a_time, "stall-then-ok", stream=True)
    assert resp.status_code == 200 and resp.headers["x-crossway-provider"] == "stall"
    last = [e for e in resp.text.split("\n\n") if e.strip()][-1]
    assert '"error"' in last and "ReadTimeout" in last
    assert record(resilient, resp).status == 502


def test_a_client_that_leaves_cancels_upstream_and_frees_its_slot(
    resilient: RunningGateway, one_at_a_time: str, upstream: SimulatedUpstream, leaks: Leaks
) -> None:
    cancelled = upstream.cancelled
    body = {"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    auth = {"authorization": f"Bearer {one_at_a_time}"}
    with httpx.stream(
        "POST", f"{resilient.base_url}/chat/completions", json=body, headers=auth
    ) as resp:
        request_id = resp.headers["x-request-id"]
        for _ in resp.iter_bytes():
            break  # one chunk, then hang up
    assert resilient.event(request_id).status == 499
    deadline = time.monotonic() + 3
    while upstream.cancelled == cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.cancelled > cancelled
    assert post(resilient, one_at_a_time, "ok-model").status_code == 200  # the slot is back


def test_readiness_and_the_deployments_view(resilient: RunningGateway, one_at_a_time: str) -> None:
    ready = httpx.get(f"{resilient.root}/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    denied = httpx.get(
        f"{resilient.root}/admin/deployments", headers={"authorization": f"Bearer {one_at_a_time}"}
    )
    assert denied.status_code == 403
    health = resilient.services.health
    everything = [d for g in resilient.services.table.deployments.values() for d in g]
    saved = [(d.breaker.state, d.breaker.open_until) for d in everything]
    try:
        for d in everything:
            health.open_until(d, health.clock() + 60)
        out = httpx.get(f"{resilient.root}/health/ready")
        assert out.status_code == 503 and out.json()["deployments_out"] == len(everything)
        assert httpx.get(f"{resilient.root}/health/live").status_code == 200
    finally:
        for d, (state, until) in zip(everything, saved, strict=True):
            d.breaker.state, d.breaker.open_until = state, until


def test_the_anthropic_door_retries_and_falls_back_alike(
    resilient: RunningGateway, one_at_a_time: str, leaks: Leaks
) -> None:
    sdk = anthropic.Anthropic(base_url=resilient.root, api_key=one_at_a_time, max_retries=0)
    raw = sdk.messages.with_raw_response.create(
        model="storm-long",
        max_tokens=20,
        messages=[{"role": "user", "content": "x"}],
        extra_body={"models": ["storm-long", "burst500"]},
    )
    assert raw.parse().content[0].type == "text"
    assert raw.http_response.headers["x-crossway-model"] == "burst500"
    assert raw.http_response.headers["x-crossway-attempts"] == "4"  # 1 + (1 + 2 retries)
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(
            model="storm-only", max_tokens=20, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
