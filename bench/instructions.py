"""Instructions per request under callgrind: what keys, limits and the ledger add, counted.

    .venv/bin/python bench/instructions.py [--requests 2000] [--runs 2] [--keep DIR]

On a machine whose speed drifts by tens of percent from one run to the next, timing cannot
tell a change of a few percent. Counting instructions can. This runs one gateway at a time
under valgrind's callgrind (Debian's valgrind package; installed with apt-get when missing)
on the simulated upstream, in three configurations:

  * master: the master key, no ledger (the --keys baseline);
  * keyed: a virtual key with the Redis limiter, no ledger;
  * keyed+ledger: the same, with the usage ledger in a fresh Postgres database.

Each serves 700 requests uninstrumented (connections, caches, a first ledger batch), then
`--requests` more, one at a time on one keep-alive connection, with instrumentation on. It
prints the instructions (callgrind's Ir) per request, the median of `--runs` runs. All three
run with `usage_flush_seconds: 60`: a gateway slowed fifty times by callgrind would otherwise
write a few rows per batch, where one under load writes whole batches of 500.

Instructions are not time. Code that misses the CPU's caches runs at a fraction of its usual
instructions per cycle, and callgrind does not see that. And the pace is not a load's: the
limiter sizes a key's allowances by its recent rate, so at callgrind's 150-200 requests a
second they are small and refilled from Redis far more often than under load ("keyed"
over-counts the limiter); the ledger's batches, by the flush setting above, are whole.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # the sibling modules import as plain modules, however this is run
    sys.path.insert(0, _HERE)

from common import CHAT_PATH, CROSSWAY, CROSSWAY_KEYS, KEY, PYTHON, say  # noqa: E402
from keyed import KeysRun  # noqa: E402
from load import ensure_command  # noqa: E402
from payloads import bodies  # noqa: E402
from procs import (  # noqa: E402
    Children,
    crossway_config,
    free_port,
    spawn_upstream,
    wait_first_answer,
)

VARIANTS = ("master", "keyed", "keyed+ledger")
WARM_UP = 700
_TOTALS = re.compile(r"^totals: (\d+)$", re.M)


def chats(port: int, token: str, body: bytes, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        for _ in range(count):
            conn.request("POST", CHAT_PATH, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"a chat answered {answer.status}")
    finally:
        conn.close()


class Callgrind(NamedTuple):
    valgrind: str
    control: str  # callgrind_control


def one_run(
    tools: Callgrind, variant: str, run: int, upstream_port: int, work: Path, requests: int
) -> int:
    """Instructions for `requests` chats in one fresh gateway of the variant."""
    kids = Children(work)
    keys = KeysRun() if variant != "master" else None
    body = bodies()["short"]
    slug = variant.replace("+", "-")
    out = work / f"callgrind-{slug}-{run}.out"
    for stale in work.glob(out.name + "*"):  # an earlier invocation's, in a kept directory
        stale.unlink()
    try:
        extra = {
            **(keys.settings(CROSSWAY_KEYS) if keys is not None else {}),
            "usage_ledger": "true" if variant == "keyed+ledger" else "false",
            "usage_flush_seconds": "60",
        }
        config = crossway_config(work, upstream_port, slug, extra)
        port = free_port()
        argv = [
            tools.valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *(PYTHON, "-m", "crossway", "serve", "--config", str(config)),
            *("--port", str(port), "--server", "builtin"),
        ]
        proc = kids.spawn(variant, port, argv)
        wait_first_answer(proc, body, deadline_s=600)
        token = KEY if keys is None else keys.make_key(proc, [])
        chats(port, token, body, WARM_UP)
        subprocess.run([tools.control, "-i", "on", str(proc.pid)], check=True, capture_output=True)
        chats(port, token, body, requests)
        subprocess.run([tools.control, "-i", "off", str(proc.pid)], check=True, capture_output=True)
        subprocess.run([tools.control, "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        kids.stop_all()
        if keys is not None:
            keys.close()
    # the dump on request, then one more as the process ends (nothing counted after "off")
    return sum(int(n) for f in work.glob(out.name + "*") for n in _TOTALS.findall(f.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep callgrind's files here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="crossway-instructions-"))
    work.mkdir(parents=True, exist_ok=True)
    kids = Children(work)
    per_request: dict[str, list[float]] = {v: [] for v in VARIANTS}
    tools = Callgrind(  # before anything starts
        ensure_command("valgrind", "valgrind"), ensure_command("callgrind_control", "valgrind")
    )
    try:
        upstream = spawn_upstream(kids)
        wait_first_answer(upstream, bodies()["short"])
        for run in range(args.runs):
            for variant in VARIANTS:
                total = one_run(tools, variant, run, upstream.port, work, args.requests)
                per_request[variant].append(total / args.requests)
                say(f"run {run + 1} {variant:13} {total / args.requests:10,.0f} per request")
    finally:
        kids.stop_all()
    base = statistics.median(per_request["master"])
    print(f"Instructions per short chat (callgrind Ir, median of {args.runs} runs):")
    for variant, values in per_request.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {variant:13} {median:10,.0f}  ({median / base:.3f} of {CROSSWAY}; runs {runs})")


if __name__ == "__main__":
    main()
