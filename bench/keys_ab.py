"""--keys side by side with an earlier revision: its gateways and this checkout's, in one run.

    .venv/bin/python bench/keys_ab.py [--base REV] [--rounds 12] [--duration 3]
                                      [--scenario short|stream20|long] [--out FILE]
                                      [--server builtin] [--base-server builtin]

On a machine whose speed changes from minute to minute, two bench runs a few minutes apart
cannot tell a change of a few percent. This runs four gateways on one simulated upstream at
once: `crossway` (master key, no ledger) and `crossway-keys` (a virtual key, the Redis
limiter, the usage ledger in a fresh Postgres database) of this checkout, and the same two of
REV (default HEAD~1), checked out into a temporary git worktree and run with this checkout's
virtualenv (so REV must not need other packages); `--server` and `--base-server` say which
HTTP server each runs on (`crossway serve --server`; revisions before the builtin server
know only uvicorn and granian). Every round runs wrk (`-t1 -c32`) against
each of the four, in a shuffled order (seeded per round, so order does not favour one), and
the result is the median over rounds of the ratio inside each round:

  * crossway-keys over crossway, for each revision: the --keys target (at least 0.85);
  * this checkout over REV, for each configuration: what the change did.

Also per gateway: CPU per request, its share of a CPU, how long it waited for one, and the CPU
Postgres and Redis used while it ran. Every child process, worktree and database is removed
at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # the sibling modules import as plain modules, however this is run
    sys.path.insert(0, _HERE)

from common import CROSSWAY, CROSSWAY_KEYS, KEY, ROOT, SCENARIOS, say  # noqa: E402
from keyed import KeysRun  # noqa: E402
from load import ensure_wrk, run_wrk, write_scripts  # noqa: E402
from payloads import bodies  # noqa: E402
from plan import SERVERS  # noqa: E402
from procs import (  # noqa: E402
    Children,
    crossway_config,
    spawn_crossway,
    spawn_upstream,
    wait_first_answer,
)
from report import KEYS_RPS_TARGET  # noqa: E402


def worktree(rev: str, into: Path) -> str:
    """REV checked out at `into`; its commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(into), commit],
        capture_output=True,
        check=True,
    )
    return commit


def pair_ratios(runs: dict[str, list[dict[str, Any]]], top: str, bottom: str) -> list[float]:
    return [a["rps"] / b["rps"] for a, b in zip(runs[top], runs[bottom], strict=True)]


def median_of(rows: list[dict[str, Any]], get: Any) -> float | None:
    values = [v for v in map(get, rows) if v is not None]
    return round(statistics.median(values), 1) if values else None


def measure(args: argparse.Namespace, work: Path, old_code: Path) -> dict[str, Any]:
    wrk = ensure_wrk()
    payloads = bodies()
    kids = Children(work)
    databases: list[KeysRun] = []
    try:
        upstream = spawn_upstream(kids)
        wait_first_answer(upstream, payloads["short"])
        gateways: dict[str, Any] = {}
        for revision, code in (("new", None), ("old", old_code)):
            for config in (CROSSWAY, CROSSWAY_KEYS):
                name = f"{config}@{revision}"
                keys = KeysRun() if config == CROSSWAY_KEYS else None
                extra = keys.settings(config) if keys else {"usage_ledger": "false"}
                path = crossway_config(work, upstream.port, name.replace("@", "-"), extra)
                server = args.server if code is None else args.base_server
                proc = spawn_crossway(kids, path, name, server, code)
                wait_first_answer(proc, payloads["short"])
                token = KEY
                if keys is not None:
                    databases.append(keys)
                    warn: list[str] = []
                    token = keys.make_key(proc, warn)
                    for line in warn:
                        say(line)
                tag = name.replace("@", "-") + "-"
                lua = write_scripts(work, payloads, token, tag)[args.scenario]
                gateways[name] = (proc, lua)
                say(f"{name} ready on :{proc.port}")
        pids = {name: proc.pid for name, (proc, _) in gateways.items()}
        for proc, lua in gateways.values():  # warm-up
            run_wrk(wrk, lua, proc.port, 2, pids)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
        for rnd in range(args.rounds):
            order = list(gateways)
            random.Random(rnd).shuffle(order)
            for name in order:
                proc, lua = gateways[name]
                r = run_wrk(wrk, lua, proc.port, args.duration, pids)
                if not r["valid"]:
                    raise RuntimeError(f"{name}: errors {r['errors']}")
                runs[name].append(
                    {
                        "rps": r["rps"],
                        "cpu_percent": r["cpu_percent"].get(name),
                        "cpu_us_per_request": r["cpu_us_per_request"].get(name),
                        "run_queue_wait_percent": r["run_queue_wait_percent"].get(name),
                        "postgres_cpu_percent": r["cpu_percent"].get("postgres"),
                        "redis_cpu_percent": r["cpu_percent"].get("redis"),
                        "machine_steal_percent": r["cpu_percent"].get("machine_steal"),
                    }
                )
                say(f"round {rnd + 1} {name:22} {r['rps']:8.0f} req/s")
        return runs
    finally:
        kids.stop_all()
        for keys in databases:
            keys.close()


def report(runs: dict[str, list[dict[str, Any]]], base: str, args: argparse.Namespace) -> str:
    ratios = {
        "keys_over_master@new": pair_ratios(runs, f"{CROSSWAY_KEYS}@new", f"{CROSSWAY}@new"),
        "keys_over_master@old": pair_ratios(runs, f"{CROSSWAY_KEYS}@old", f"{CROSSWAY}@old"),
        "new_over_old@crossway": pair_ratios(runs, f"{CROSSWAY}@new", f"{CROSSWAY}@old"),
        "new_over_old@crossway-keys": pair_ratios(
            runs, f"{CROSSWAY_KEYS}@new", f"{CROSSWAY_KEYS}@old"
        ),
    }
    lines = [
        f"### {args.scenario} chats, this checkout ({args.server}) against {base} "
        f"({args.base_server}): {args.rounds} rounds of {args.duration} s, medians of the "
        "ratios inside each round",
        "",
        "| ratio | median | by round |",
        "|---|---:|---|",
    ]
    for name, values in ratios.items():
        mark = ""
        if name.startswith("keys_over_master"):
            met = statistics.median(values) >= KEYS_RPS_TARGET
            mark = f" (target >= {KEYS_RPS_TARGET}: {'met' if met else 'MISSED'})"
        by_round = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):.3f}{mark} | {by_round} |")
    lines += [
        "",
        "| gateway | req/s | CPU us per request | CPU used | waited for a CPU | Postgres CPU"
        " | Redis CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in runs.items():
        cells = [
            median_of(rows, lambda r, k=k: r[k])
            for k in (
                "rps",
                "cpu_us_per_request",
                "cpu_percent",
                "run_queue_wait_percent",
                "postgres_cpu_percent",
                "redis_cpu_percent",
            )
        ]
        lines.append(
            f"| {name} | " + " | ".join("-" if c is None else f"{c:g}" for c in cells) + " |"
        )
    steal = [r["machine_steal_percent"] or 0.0 for rows in runs.values() for r in rows]
    lines += [
        "",
        f"CPU steal during the runs: median {statistics.median(steal):.1f}%, "
        f"highest {max(steal):.1f}%.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="the earlier revision (git)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--scenario", choices=SCENARIOS, default="short")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--server", choices=SERVERS, default="builtin", help="this checkout's")
    parser.add_argument("--base-server", choices=SERVERS, default="builtin", help="REV's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crossway-keys-ab-"))
    old_code = work / "base"
    commit = worktree(args.base, old_code)
    say(f"{args.base} is {commit[:10]}, checked out at {old_code}")
    try:
        runs = measure(args, work, old_code)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_code)],
            capture_output=True,
        )
    table = report(runs, f"{args.base} ({commit[:10]})", args)
    print(table)
    if args.out:
        args.out.write_text(json.dumps({"base": commit, "runs": runs}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
