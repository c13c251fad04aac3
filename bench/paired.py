"""--keys: `crossway` and `crossway-keys` in many short pairs of runs, per scenario.

This machine's speed moves within seconds (CPU steal, neighbours): two 5-second runs a few
seconds apart differ by up to a third with the same code (an A/A run of keys_ab.py, in
docs/performance.md), so three rounds cannot tell 0.85 from 0.95. Here each pair is one run
of each gateway back to back, the order swapped every pair (AB, BA, ...) so neither always
goes first, and the figures are the median of the pairs' ratios with its quartiles, and the
ratio of the requests summed over all pairs (both gateways had the same seconds).
"""

from __future__ import annotations

import statistics
from typing import Any

from common import CROSSWAY, CROSSWAY_KEYS, SCENARIOS, say
from load import Load


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summarise_pairs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of the pairs' ratios (keyed over master), its quartiles, and the ratio of
    the summed requests; each gateway's median CPU per request."""
    ratios = [p["ratio"] for p in pairs]
    low, high = _quartiles(ratios)
    total = {t: sum(p[t]["requests"] for p in pairs) for t in (CROSSWAY, CROSSWAY_KEYS)}
    cpu: dict[str, float | None] = {}
    for t in (CROSSWAY, CROSSWAY_KEYS):
        seen = [p[t]["cpu_us_per_request"] for p in pairs]
        known = [v for v in seen if v is not None]
        cpu[t] = statistics.median(known) if known else None
    return {
        "pairs": len(pairs),
        "median_ratio": round(statistics.median(ratios), 3),
        "quartiles": [round(low, 3), round(high, 3)],
        "ratio_of_sums": round(total[CROSSWAY_KEYS] / total[CROSSWAY], 3),
        "requests": total,
        "cpu_us_per_request_median": cpu,
    }


def paired(count: int, seconds: int, load: Load) -> dict[str, Any]:
    """Scenario -> `count` pairs of `seconds`-long wrk runs and their summary."""
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        pairs: list[dict[str, Any]] = []
        for i in range(count):
            order = (CROSSWAY, CROSSWAY_KEYS) if i % 2 == 0 else (CROSSWAY_KEYS, CROSSWAY)
            pair: dict[str, Any] = {"first": order[0]}
            for target in order:
                r = load.run(target, scenario, seconds)
                if not r["valid"]:
                    load.warn.append(
                        f"INVALID: pair {i + 1} {scenario} {target}: errors {r['errors']}"
                    )
                pair[target] = {
                    "requests": r["requests"],
                    "rps": r["rps"],
                    "cpu_us_per_request": r["cpu_us_per_request"].get(target),
                    "run_queue_wait_percent": r["run_queue_wait_percent"].get(target),
                    "machine_steal_percent": r["cpu_percent"].get("machine_steal"),
                }
            pair["ratio"] = round(pair[CROSSWAY_KEYS]["rps"] / pair[CROSSWAY]["rps"], 4)
            pairs.append(pair)
            say(
                f"pair {i + 1:2}/{count} {scenario:8} crossway {pair[CROSSWAY]['rps']:7.0f}  "
                f"crossway-keys {pair[CROSSWAY_KEYS]['rps']:7.0f} req/s  ratio {pair['ratio']:.3f}"
            )
        out[scenario] = {"runs": pairs, **summarise_pairs(pairs)}
    return out
