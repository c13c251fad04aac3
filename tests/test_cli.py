"""`crossway serve` as a new user starts it: a real process, the SDK, then SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from conftest import free_port


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never printed; got:\n{''.join(seen)}")


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith("CROSSWAY_")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "crossway", "serve", *args],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def stop_after() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM: a graceful stop (uvicorn re-raises the signal once it has shut down)."""
    proc.send_signal(signal.SIGTERM)
    wait_for_line(proc, "Crossway stopped")
    assert proc.wait(15) in (0, -signal.SIGTERM)


def test_demo_mode_answers_every_vendor_offline(
    tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    proc = serve(tmp_path, "--demo", "--port", str(port))
    stop_after.append(proc)
    banner = wait_for_line(proc, "demo:")
    assert f"http://127.0.0.1:{port}/v1" in banner and "sk-crossway-demo" in banner
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-crossway-demo", max_retries=0
    )
    for model in (
        "gpt-4o",
        "claude-sonnet-4",
        "gemini-2.5-flash",
        "deepseek-chat",
        "grok-3",
        "mistral-large-latest",
        "doubao-seed-1-6",
        "llama-3.1-8b-instruct",
    ):
        answer = client.chat.completions.create(
            model=model,
            messages=[  # type: ignore[arg-type]
                {"role": "user", "content": "hi"}
            ],
        )
        assert (answer.choices[0].message.content or "").startswith("[simulated]"), model
    assert len(client.models.list().data) > 40
    stop(proc)


def test_first_start_generates_a_master_key_once(
    tmp_path: Path, stop_after: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    proc = serve(tmp_path, "--port", str(port))
    stop_after.append(proc)
    banner = wait_for_line(proc, "no provider is configured")
    key = next(w for w in banner.split() if w.startswith("sk-cw-"))
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    assert client.models.list().data == []
    stop(proc)
    assert (tmp_path / "crossway.db").exists()
    # the second start uses the stored hash and does not show the key again
    again = serve(tmp_path, "--port", str(port))
    stop_after.append(again)
    banner = wait_for_line(again, "auth:")
    assert "sk-cw-" not in banner.replace(key[:10], "") and "stored in" in banner
    client.models.list()  # the same key still works


def test_a_bad_config_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "crossway.yaml").write_text("providers:\n  o: {type: openai}\n")
    run = subprocess.run(
        [sys.executable, "-m", "crossway", "serve"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )
    assert run.returncode == 2
    assert "crossway.yaml: providers.o.api_key: required for type 'openai'" in run.stderr
