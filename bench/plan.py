"""What one run does: the command line, with the quick or full defaults filled in.

Which Crossway processes run (one, one per server with --compare-servers, or the master-key
one beside the virtual-key one with --keys) is decided here, so every step after just
iterates over the plan's targets.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from common import BENCH, CROSSWAY, CROSSWAY_KEYS, DIRECT, FLOOR

SERVERS = ("builtin", "uvicorn", "granian")  # what `crossway serve --server` accepts


@dataclass
class Plan:
    """What this run does: the options, with the quick or full defaults filled in."""

    quick: bool
    duration: int
    rounds: int
    warmup_s: int
    requests: int
    stream_requests: int
    seq_warmup: int
    startups: int
    out: Path
    keep: bool
    server: str = "builtin"
    compare_servers: bool = False
    keys: bool = False
    pairs: int = 0  # --keys: pairs of short runs per scenario (paired.py)
    pair_seconds: int = 2

    @property
    def crossways(self) -> dict[str, str]:
        """Crossway target name -> the server it runs on."""
        if self.compare_servers:  # the first server is `crossway`, the others beside it
            return {CROSSWAY: SERVERS[0], **{f"{CROSSWAY}-{s}": s for s in SERVERS[1:]}}
        if self.keys:
            return {CROSSWAY: self.server, CROSSWAY_KEYS: self.server}
        return {CROSSWAY: self.server}

    @property
    def targets(self) -> list[str]:
        return [DIRECT, FLOOR, *self.crossways]


def parse_plan(doc: str | None) -> Plan:
    """The command line (doc: the --help text), with the quick or full defaults."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="about one minute in all")
    parser.add_argument(
        "--duration", type=int, help="seconds per wrk measurement (default 5, quick 2)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument(
        "--requests", type=int, help="sequential requests per target (default 2000, quick 400)"
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="builtin",
        help="passed to `crossway serve --server` (default builtin)",
    )
    parser.add_argument(
        "--compare-servers",
        action="store_true",
        help="run Crossway on its own server (`crossway`), on uvicorn (`crossway-uvicorn`) "
        "and on granian (`crossway-granian`) side by side, interleaved",
    )
    parser.add_argument(
        "--keys",
        action="store_true",
        help="add `crossway-keys` (a virtual key, Redis limiter, usage ledger in a fresh "
        "Postgres database) beside `crossway` (master key, no ledger), interleaved",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        help="--keys: pairs of short back-to-back runs of crossway and crossway-keys per "
        "scenario, after the rounds (default 12, quick 3)",
    )
    parser.add_argument(
        "--pair-seconds", type=int, default=2, help="seconds per run of a pair (default 2)"
    )
    parser.add_argument("--out", default=str(BENCH / "results" / "latest.json"))
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (server logs); kept anyway when a figure is invalid",
    )
    args = parser.parse_args()
    if args.compare_servers and args.server != "builtin":
        parser.error("--compare-servers runs both servers; leave out --server")
    if args.compare_servers and args.keys:
        parser.error("--keys and --compare-servers are separate comparisons; pick one")
    quick = args.quick
    requests = args.requests or (400 if quick else 2000)
    pairs = args.pairs if args.pairs is not None else 3 if quick else 12
    return Plan(
        quick=quick,
        duration=args.duration or (2 if quick else 5),
        rounds=args.rounds or (1 if quick else 3),
        warmup_s=1,
        requests=requests,
        stream_requests=max(50, requests // 4),
        seq_warmup=100 if quick else 200,
        startups=1 if quick else 3,
        out=Path(args.out),
        keep=args.keep,
        server=args.server,
        compare_servers=args.compare_servers,
        keys=args.keys,
        pairs=pairs if args.keys else 0,
        pair_seconds=args.pair_seconds,
    )
