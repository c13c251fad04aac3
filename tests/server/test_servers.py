"""The gateway behaves the same on every server it can run on.

In the tests' own loop: Crossway's own server and uvicorn, driven through the official SDKs.
As a user starts it: `crossway serve --demo --server S` for all three (granian included), a
chat and a stream, then SIGTERM, which must write every usage event before the process ends.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import (
    MASTER_KEY,
    BackgroundLoop,
    RunningGateway,
    free_port,
    start_gateway,
    upstream_settings,
)
from test_cli import serve, wait_for_line

from crossway.server.serve import Server
from crossway.testing import SimulatedUpstream

USER = [{"role": "user", "content": "hi"}]
WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"
    b"\x02\x00\x10\x00data\x00\x00\x00\x00"
)


@pytest.fixture(scope="module", params=["builtin", "uvicorn"])
def on_server(
    request: pytest.FixtureRequest, background: BackgroundLoop, upstream: SimulatedUpstream
) -> Iterator[RunningGateway]:
    running = start_gateway(background, upstream_settings(upstream.base_url), request.param)
    yield running
    running.stop()


def test_a_chat_with_its_headers(on_server: RunningGateway) -> None:
    raw = on_server.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=USER,  # type: ignore[arg-type]
    )
    assert raw.http_response.headers["x-request-id"].startswith("req_")
    assert raw.http_response.headers["x-crossway-vendor"] == "openai"
    assert (raw.parse().choices[0].message.content or "").startswith("[simulated]")


def test_a_limited_keys_headers_and_its_429(on_server: RunningGateway) -> None:
    made = httpx.post(
        on_server.root + "/admin/keys",
        json={"name": f"limited-{time.time_ns()}", "limits": {"rpm": 2, "tpm": 100_000}},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert made.status_code == 201, made.text
    client = openai.OpenAI(base_url=on_server.base_url, api_key=made.json()["key"], max_retries=0)
    seen = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=USER,  # type: ignore[arg-type]
        )
        headers = raw.http_response.headers
        seen.append(headers["x-ratelimit-remaining-requests"])
        assert headers["x-ratelimit-limit-requests"] == "2"
        assert headers["x-ratelimit-limit-tokens"] == "100000"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert headers["x-crossway-model"] == "gpt-4o-mini"
        assert headers["x-crossway-attempts"] == "1"
    assert seen == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert int(caught.value.response.headers["retry-after"]) > 0
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_translated_stream(on_server: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=on_server.root, api_key=MASTER_KEY, max_retries=0)
    with claude.messages.stream(model="gpt-4o-mini", max_tokens=50, messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
    assert text.startswith("[simulated]")


def test_an_error_in_the_callers_format(on_server: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=on_server.root, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert caught.value.response.headers["request-id"].startswith("req_")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=on_server.base_url, api_key="sk-wrong", max_retries=0).models.list()


def test_an_upload(on_server: RunningGateway) -> None:
    text = on_server.client().audio.transcriptions.create(
        model="whisper-1", file=("tone.wav", WAV + b"\x00" * 200_000, "audio/wav")
    )
    assert text.text


def test_a_client_leaving_mid_stream_is_recorded_as_499(on_server: RunningGateway) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": USER,
        "stream": True,
        "simulate": {"chunks": 200, "chunk_delay_ms": 50},
    }
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", on_server.base_url + "/chat/completions", json=body, headers=headers
        ) as resp,
    ):
        request_id = resp.headers["x-request-id"]
        next(line for line in resp.iter_lines() if '"content":"' in line)
    event = on_server.event(request_id)
    assert event.status == 499 and event.error_type == "client_closed"


@pytest.mark.parametrize("server", ["builtin", "uvicorn", "granian"])
def test_crossway_serve_on_each_server_stops_with_nothing_lost(tmp_path: Path, server: str) -> None:
    port = free_port()
    proc = serve(tmp_path, "--demo", "--port", str(port), "--server", server)
    try:
        wait_for_line(proc, "demo:")
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-crossway-demo", max_retries=0
        )
        for _ in range(20):
            client.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
        chunks = list(
            client.chat.completions.create(model="claude-sonnet-4", messages=USER, stream=True)  # type: ignore[arg-type]
        )
        assert chunks
        proc.send_signal(signal.SIGTERM)
        farewell = wait_for_line(proc, "Crossway stopped")
        assert "usage events dropped: 0" in farewell
        assert proc.wait(15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    usage = _usage_rows(tmp_path)
    assert usage == 21, f"{usage} usage rows for 21 requests"


def _usage_rows(folder: Path) -> int:
    import sqlite3

    deadline = time.monotonic() + 5
    with sqlite3.connect(folder / "crossway.db") as db:
        while True:
            (count,) = db.execute("SELECT count(*) FROM usage").fetchone()
            if count >= 21 or time.monotonic() > deadline:
                return int(count)
            time.sleep(0.05)


def test_an_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*serve_argv(), "--demo", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def serve_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "crossway", "serve"]


def test_requests_cut_short_by_a_stop_are_still_recorded(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    """A stop waits `shutdown_timeout` for requests in flight, then cancels them: a caller
    gets a 503, and each still gets its usage event (503, cut_short) before the recorder's
    final write."""
    import threading

    gw = start_gateway(background, upstream_settings(upstream.base_url))
    assert isinstance(gw.server, Server)
    gw.server.shutdown_timeout = 0.3
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    outcomes: list[str] = []

    def call(stream: bool) -> None:
        body = {
            "model": "gpt-4o-mini",
            "messages": USER,
            "stream": stream,
            "simulate": {"latency_ms": 5000},
        }
        try:
            resp = httpx.post(
                gw.base_url + "/chat/completions", json=body, headers=headers, timeout=10
            )
            outcomes.append(str(resp.status_code))
        except httpx.HTTPError as exc:
            outcomes.append(type(exc).__name__)

    callers = [threading.Thread(target=call, args=(stream,)) for stream in (False, True)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 5
    while upstream.active < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstream.active == 2
    started = time.monotonic()
    gw.stop()
    assert time.monotonic() - started < 5  # not the upstream's 5 s
    for caller in callers:
        caller.join(10)
    assert outcomes == ["503", "503"]  # neither was answered: both may be retried
    cut = [e for e in gw.usage.events if e.error_type == "cut_short"]
    assert sorted(e.stream for e in cut) == [False, True]
    assert {e.status for e in cut} == {503}
