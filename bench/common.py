"""What every part of the benchmark shares: paths, the key and model, the chat endpoint.

Kept apart so the other modules can import these without importing each other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
KEY = "sk-bench"
MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
CONNECTIONS = 32
DIRECT = "direct"  # the upstream measured without a proxy: the ceiling
FLOOR = "floor"  # bench/floor_proxy.py: the practical floor for a Python gateway
CROSSWAY = "crossway"  # `crossway serve` with the --server of the run
CROSSWAY_KEYS = "crossway-keys"  # --keys: a virtual key, Redis limits, ledger in Postgres
TARGETS = (DIRECT, FLOOR, CROSSWAY)  # the targets of a run without --compare-servers
SCENARIOS = ("short", "stream20", "long")
T0 = time.perf_counter()


def say(message: str) -> None:
    """Progress on stderr, with the seconds since the start, so stdout is the table alone."""
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def headers(token: str = KEY) -> dict[str, str]:
    """A chat request's headers with this Bearer token (the master key unless told)."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def key_of(target: str) -> str:
    """A target's name as a JSON key prefix: `crossway-granian` -> `crossway_granian`."""
    return target.replace("-", "_")


def side_bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every side benchmark (media, failover, translated) takes, with the first
    line of its docstring as description: --duration, --rounds and --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    return parser


def publish(results: dict[str, Any], table: str, out: Path | None) -> None:
    """The markdown table on stdout; the whole results as JSON in `out`, if given."""
    print(table)
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n")
