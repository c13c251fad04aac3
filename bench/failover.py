"""Routing under failure, and what one routing decision costs.

    .venv/bin/python bench/failover.py [--duration S] [--rounds R] [--requests N] [--out F]

One Crossway in front of the simulated upstream serves two models:
  `bench-single`  one healthy deployment (the baseline);
  `bench-halved`  two deployments of equal weight, one healthy and one answering 500 to
                  every request (an `x-simulate` provider header).
After a warm-up that lets the broken deployment's breaker open, it measures, interleaved:
  * one request at a time (N per round and target): the upstream direct, `bench-single` and
    `bench-halved`; added latency = gateway minus direct, p50 and p99;
  * wrk at 32 connections for S seconds each: both models' req/s and any non-2xx answer.
The breaker's cool-down (30 s) passes during the run, so half-open probes reach the broken
deployment as they would in production; each fails over within the same request.

Then, in this process: one routing decision (`Router.resolve`) for a model with 50
deployments, per strategy, and with 10 of the 50 breakers open; microseconds per decision.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from common import DIRECT, KEY, headers, publish, say, side_bench_parser  # noqa: E402
from load import ensure_wrk, run_wrk, write_scripts  # noqa: E402
from machine import machine_info  # noqa: E402
from procs import Children, post_once, spawn_crossway, spawn_upstream, wait_first_answer  # noqa: E402
from sequential import keepalive, pct, timed  # noqa: E402

from crossway.catalog import Catalog  # noqa: E402
from crossway.config import Settings  # noqa: E402
from crossway.providers import PROVIDER_TYPES, Provider  # noqa: E402
from crossway.providers.transport import Transport  # noqa: E402
from crossway.routing import Health, ModelTable, Router  # noqa: E402

MODELS = ("bench-single", "bench-halved")
MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in two sentences."}]


def config(workdir: Path, upstream_port: int) -> Path:
    base = f"http://127.0.0.1:{upstream_port}/v1"
    path = workdir / "crossway.yaml"
    path.write_text(
        f"master_key: {KEY}\nlog_requests: true\n"
        f'database_url: "sqlite:///{workdir}/crossway.db"\n'
        "providers:\n"
        f'  sim: {{type: openai-compatible, base_url: "{base}"}}\n'
        f'  sim-broken: {{type: openai-compatible, base_url: "{base}", '
        "headers: {x-simulate: '{\"status\": 500}'}}\n"
        "models:\n"
        "  bench-single: {deployments: [{provider: sim, model: m}]}\n"
        "  bench-halved: {deployments: [{provider: sim, model: m}, "
        "{provider: sim-broken, model: m}]}\n"
    )
    return path


def body(model: str) -> bytes:
    return json.dumps({"model": model, "messages": MESSAGES, "max_tokens": 64}).encode()


def one_at_a_time(ports: dict[str, tuple[int, str]], requests: int) -> dict[str, list[float]]:
    """ms per request for each target, taking turns in batches of 50."""
    conns = {name: keepalive(port) for name, (port, _) in ports.items()}
    samples: dict[str, list[float]] = {name: [] for name in ports}
    head = headers()
    for batch in range(requests // 50):
        order = list(ports) if batch % 2 == 0 else list(reversed(ports))
        for name in order:
            payload = body(ports[name][1])
            for _ in range(50):
                status, total_ns, _ = timed(conns[name], payload, False, head)
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}")
                samples[name].append(total_ns / 1e6)
    for conn in conns.values():
        conn.close()
    return samples


def routing_decisions(repeat: int = 20000) -> dict[str, float]:
    """µs per `Router.resolve` of a model with 50 deployments."""
    providers_cfg = {
        f"p{i}": {"type": "openai-compatible", "base_url": f"http://10.0.0.{i}:8000/v1"}
        for i in range(50)
    }
    models = {
        "wide": {
            "deployments": [
                {"provider": f"p{i}", "model": "m", "weight": 1 + i % 3, "priority": i % 2}
                for i in range(50)
            ]
        }
    }
    settings = Settings.model_validate({"providers": providers_cfg, "models": models})
    providers: dict[str, Provider] = {
        n: PROVIDER_TYPES[c.type](n, c) for n, c in settings.providers.items()
    }
    transports = {n: Transport(p) for n, p in providers.items()}
    table = ModelTable.build(settings, Catalog.load(), providers, transports)
    out: dict[str, float] = {}
    for strategy in ("weighted", "least-busy", "lowest-latency", "lowest-cost"):
        health = Health()
        router = Router(table, PROVIDER_TYPES, providers, health, strategy)
        for i, dep in enumerate(table.deployments["wide"]):
            dep.breaker.__init__()  # type: ignore[misc]
            dep.breaker.latency_ms = float(i % 7)
            dep.breaker.in_flight = i % 5
        out[strategy] = _time_resolve(router, repeat)
    health = Health()
    router = Router(table, PROVIDER_TYPES, providers, health, "weighted")
    for dep in table.deployments["wide"][:10]:
        health.open_until(dep, health.clock() + 3600)
    out["weighted, 10 of 50 breakers open"] = _time_resolve(router, repeat)
    return out


def _time_resolve(router: Router, repeat: int) -> float:
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeat):
            router.resolve("wide")
        samples.append((time.perf_counter() - started) * 1e6 / repeat)
    return round(statistics.median(samples), 2)


def main() -> None:
    parser = side_bench_parser(__doc__ or "")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crossway-bench-failover-"))
    kids = Children(workdir)
    results: dict[str, Any] = {"rounds": [], "args": {**vars(args), "out": str(args.out)}}
    try:
        wrk = ensure_wrk()
        results["machine"] = machine_info(wrk)
        upstream = spawn_upstream(kids)
        crossway = spawn_crossway(kids, config(workdir, upstream.port), "crossway", "uvicorn")
        wait_first_answer(crossway, body("bench-single"))
        for _ in range(20):  # let the broken deployment's breaker open
            status, raw, _ = post_once(crossway.port, body("bench-halved"))
            if status != 200:
                raise RuntimeError(f"bench-halved answered {status}: {raw[:200]!r}")
        say(f"crossway ready on :{crossway.port}; the broken deployment's breaker has opened")
        luas = write_scripts(workdir, {m: body(m) for m in MODELS})
        pids = {"crossway": crossway.pid, "upstream": upstream.pid}
        ports = {
            DIRECT: (upstream.port, "m"),
            "bench-single": (crossway.port, "bench-single"),
            "bench-halved": (crossway.port, "bench-halved"),
        }
        for round_no in range(args.rounds):
            figures: dict[str, Any] = {"sequential_ms": one_at_a_time(ports, args.requests)}
            for model in MODELS:
                run = run_wrk(wrk, luas[model], crossway.port, args.duration, pids)
                figures[model] = {
                    "rps": run["rps"],
                    "requests": run["requests"],
                    "errors": run["errors"],
                    "p50_ms": run["latency_ms"]["p50"],
                }
                say(f"round {round_no + 1} {model}: {run['rps']:.0f} req/s, errors {run['errors']}")
            results["rounds"].append(figures)
        results["routing_us"] = routing_decisions()
    finally:
        kids.stop_all()
    publish(results, report(results), args.out)


def report(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    seq = {
        name: [s for r in rounds for s in r["sequential_ms"][name]] for name in (DIRECT, *MODELS)
    }
    lines = [
        "| one at a time | p50 ms | p99 ms | added p50 | added p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in seq.items():
        p50, p99 = pct(samples, 50), pct(samples, 99)
        added = "" if name == DIRECT else f"+{p50 - pct(seq[DIRECT], 50):.3f} ms"
        added99 = "" if name == DIRECT else f"+{p99 - pct(seq[DIRECT], 99):.3f} ms"
        lines.append(f"| {name} | {p50:.3f} | {p99:.3f} | {added} | {added99} |")
    lines += [
        "",
        "| 32 connections | req/s (median) | per round | non-2xx / errors |",
        "|---|---:|---|---:|",
    ]
    for model in MODELS:
        rps = statistics.median(r[model]["rps"] for r in rounds)
        per = ", ".join(f"{r[model]['rps']:.0f}" for r in rounds)
        errors = sum(sum(r[model]["errors"].values()) for r in rounds)
        total = sum(r[model]["requests"] for r in rounds)
        lines.append(f"| {model} | {rps:,.0f} | {per} | {errors} of {total:,} |")
    lines += ["", "| routing decision, 50 deployments | µs |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in results["routing_us"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
