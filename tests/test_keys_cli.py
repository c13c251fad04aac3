"""`crossway keys` and `crossway usage` on the database a gateway uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import MASTER_KEY, BackgroundLoop, start_gateway, upstream_settings

from crossway.testing import SimulatedUpstream


def crossway(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWAY_")}
    env["CROSSWAY_DATABASE_URL"] = f"sqlite:///{tmp_path}/crossway.db"
    env["CROSSWAY_MASTER_KEY"] = MASTER_KEY
    return subprocess.run(
        [sys.executable, "-m", "crossway", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_key_made_with_the_cli_works_on_a_running_gateway(
    tmp_path: Path, background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    made = crossway(
        tmp_path,
        "keys",
        "create",
        "--name",
        "ci-bot",
        "--models",
        "gpt-4o,gpt-4o-mini",
        "--budget",
        "20/month",
        "--budget",
        "1/day",
        "--rpm",
        "60",
        "--expires",
        "30d",
        "--metadata",
        "team=qa",
    )
    assert made.returncode == 0, made.stderr
    secret = next(w for w in made.stdout.split() if w.startswith("sk-cw-"))
    listed = crossway(tmp_path, "keys", "list")
    assert "ci-bot" in listed.stdout and "20/month" in listed.stdout
    assert secret not in listed.stdout

    gateway = start_gateway(
        background,
        upstream_settings(upstream.base_url, database_url=f"sqlite:///{tmp_path}/crossway.db"),
    )
    try:
        answer = httpx.post(
            gateway.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit-requests"] == "60"
    finally:
        gateway.stop()  # writes the ledger

    report = crossway(tmp_path, "usage", "--key", "ci-bot", "--group-by", "model")
    assert report.returncode == 0
    assert "gpt-4o-mini" in report.stdout.splitlines()[1]

    assert crossway(tmp_path, "keys", "disable", "ci-bot").returncode == 0
    shown = crossway(tmp_path, "keys", "show", "ci-bot").stdout
    assert '"enabled": false' in shown and '"team": "qa"' in shown


def test_cli_mistakes_are_said_plainly(tmp_path: Path) -> None:
    bad = crossway(tmp_path, "keys", "create", "--name", "x", "--budget", "20/week")
    assert bad.returncode == 2 and "--budget '20/week'" in bad.stdout
    bad = crossway(tmp_path, "keys", "create", "--name", "x", "--models", "gpt 4o")
    assert bad.returncode == 2 and "models" in bad.stdout and "Traceback" not in bad.stderr
    crossway(tmp_path, "keys", "create", "--name", "dup")
    again = crossway(tmp_path, "keys", "create", "--name", "dup")
    assert again.returncode == 2 and "exists already" in again.stdout
    assert crossway(tmp_path, "keys", "show", "nobody").returncode == 1
