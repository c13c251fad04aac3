"""Crossway's benchmark: the gateway side by side with a 30-line floor proxy and the upstream.

    .venv/bin/python bench/run.py [--quick] [--duration S] [--rounds R] [--requests N]
                                  [--server builtin|uvicorn|granian] [--compare-servers] [--keys]
                                  [--pairs N] [--pair-seconds S]
                                  [--out bench/results/latest.json] [--keep]

One run starts three processes on 127.0.0.1 (the simulated upstream with zero delay, the floor
proxy in bench/floor_proxy.py, and `crossway serve --server S`), then measures, interleaved
in rounds:

  * throughput at 32 connections with wrk: short chat, stream of 20 chunks, long (~50 KB) chat;
    upstream direct first in every round (its ceiling), then floor and Crossway in
    alternating order;
  * added latency one request at a time over one keep-alive connection, interleaved batches;
  * RSS of Crossway idle and under load, and the time from spawn to the first answered chat.

--compare-servers runs three Crossway processes side by side, `crossway` on its own server,
`crossway-uvicorn` and `crossway-granian`, interleaved with the floor in every round and batch.
--keys runs `crossway` with the master key and no ledger beside `crossway-keys` with a virtual
key, the Redis limiter and the usage ledger in a fresh Postgres database (see keyed.py),
then the two in many short back-to-back pairs per scenario (paired.py).

It prints a markdown summary and writes JSON. Every child process is killed at the end.
See bench/README.md for how to read the figures.

This file is the entry point and the order of the steps; the steps live beside it:
plan.py (options), procs.py (servers, CPU, RSS), load.py (wrk), sequential.py (one at a
time), payloads.py (bodies, answer checks), logs.py (usage log), keyed.py (--keys: database,
key, ledger count), paired.py (--keys pairs), machine.py, report.py (the table) and
common.py (constants).
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # the sibling modules import as plain modules, however this is run
    sys.path.insert(0, _HERE)

from common import (  # noqa: E402
    CONNECTIONS,
    CROSSWAY,
    CROSSWAY_KEYS,
    DIRECT,
    FLOOR,
    KEY,
    SCENARIOS,
    T0,
    key_of,
    say,
)
from keyed import KeysRun  # noqa: E402
from load import Load, ensure_wrk, summarise, write_scripts  # noqa: E402
from logs import tracebacks, usage_log_summary, usage_warnings  # noqa: E402
from machine import busy_before_start, machine_info  # noqa: E402
from paired import paired  # noqa: E402
from payloads import bodies, check_answer  # noqa: E402
from plan import Plan, parse_plan  # noqa: E402
from procs import (  # noqa: E402
    Children,
    Proc,
    RssSampler,
    crossway_config,
    post_once,
    proc_status,
    spawn_crossway,
    spawn_floor,
    spawn_upstream,
    wait_first_answer,
)
from report import markdown  # noqa: E402
from sequential import sequential  # noqa: E402


@dataclass
class Servers:
    """The processes under test, once all of them answer."""

    upstream: Proc
    floor: Proc
    crossways: dict[str, Proc]

    def procs(self) -> dict[str, Proc]:
        """Process name -> process; the names are the keys of CPU and RSS figures."""
        return {"upstream": self.upstream, FLOOR: self.floor, **self.crossways}

    def ports(self) -> dict[str, int]:
        """Target name -> port; the upstream's own port is the target `direct`."""
        crossways = {name: proc.port for name, proc in self.crossways.items()}
        return {DIRECT: self.upstream.port, FLOOR: self.floor.port, **crossways}


def start_servers(
    plan: Plan,
    kids: Children,
    workdir: Path,
    short: bytes,
    res: dict[str, Any],
    keys: KeysRun | None,
) -> Servers:
    """Upstream, then each Crossway `plan.startups` times (spawn to first answered chat is
    the start-up time; the last spawn stays up), then the floor proxy. With keys (--keys)
    each Crossway gets the settings of its side of that comparison."""
    upstream = spawn_upstream(kids)
    wait_first_answer(upstream, short)
    say(f"upstream ready on :{upstream.port} (pid {upstream.pid})")
    startup_ms: dict[str, Any] = {}
    crossways: dict[str, Proc] = {}
    for name, server in plan.crossways.items():
        extra = keys.settings(name) if keys else None
        config = crossway_config(workdir, upstream.port, name, extra)
        startup: list[float] = []
        proc: Proc | None = None
        for i in range(plan.startups):
            proc = spawn_crossway(kids, config, name, server)
            startup.append(wait_first_answer(proc, short))
            say(
                f"{name} ({server}) start {i + 1}/{plan.startups}: first answer after "
                f"{startup[-1] * 1000:.0f} ms (pid {proc.pid})"
            )
            if i < plan.startups - 1:
                proc.stop()
        assert proc is not None  # plan.startups >= 1
        crossways[name] = proc
        startup_ms[f"{key_of(name)}_runs"] = [round(s * 1000, 1) for s in startup]
        startup_ms[f"{key_of(name)}_median"] = round(statistics.median(startup) * 1000, 1)
    floor = spawn_floor(kids, upstream.port)
    floor_start = wait_first_answer(floor, short)
    say(f"floor proxy ready on :{floor.port} after {floor_start * 1000:.0f} ms")
    res["startup_ms"] = {
        **startup_ms,
        "floor": round(floor_start * 1000, 1),
        "method": "perf_counter before spawn -> first 200 to a real chat request, "
        "polled every 10 ms",
    }
    return Servers(upstream, floor, crossways)


def check_answers(
    ports: dict[str, int],
    payloads: dict[str, bytes],
    tokens: dict[str, str],
    sent: dict[str, int],
    warn: list[str],
) -> dict[str, dict[str, str]]:
    """Correctness first: each target answers each scenario as expected ("ok" or why not)."""
    checks: dict[str, dict[str, str]] = {}
    for target, port in ports.items():
        for scenario in SCENARIOS:
            status, raw, _ = post_once(port, payloads[scenario], timeout=10, token=tokens[target])
            if target in sent:
                sent[target] += 1
            problem = check_answer(scenario, status, raw)
            checks.setdefault(target, {})[scenario] = problem or "ok"
            if problem:
                warn.append(f"WRONG ANSWER: {target} {scenario}: {problem}")
    return checks


def throughput(plan: Plan, load: Load) -> list[dict[str, Any]]:
    """Warm-up, then `plan.rounds` rounds: per scenario the upstream first, then the proxies
    in an order reversed every round (A B, B A, ...) so drift hits all of them."""
    runs: list[dict[str, Any]] = []
    width = max(len(t) for t in plan.targets)
    say(f"warm-up: {plan.warmup_s} s per target and scenario")
    for scenario in SCENARIOS:
        for target in plan.targets:
            load.run(target, scenario, plan.warmup_s)
    proxies = [FLOOR, *plan.crossways]
    for rnd in range(plan.rounds):
        for scenario in SCENARIOS:
            for target in [DIRECT, *(proxies if rnd % 2 == 0 else proxies[::-1])]:
                r = load.run(target, scenario, plan.duration)
                r.update(round=rnd + 1, scenario=scenario, target=target)
                runs.append(r)
                say(
                    f"round {rnd + 1} {scenario:8} {target:{width}} {r['rps']:8.0f} req/s  "
                    f"p50 {r['latency_ms']['p50']:.2f} ms  p99 "
                    f"{r['latency_ms']['p99']:.2f} ms  cpu {r['cpu_percent']}"
                    + ("" if r["valid"] else f"  INVALID {r['errors']}")
                )
                if not r["valid"]:
                    load.warn.append(
                        f"INVALID: {scenario} {target} round {rnd + 1}: errors {r['errors']}"
                    )
                if r["cpu_percent"]["machine_steal"] >= 10:
                    load.warn.append(
                        f"CPU STEAL {r['cpu_percent']['machine_steal']}% during "
                        f"{scenario} {target} round {rnd + 1}: the host took CPU from "
                        "this VM; that round is less reliable (see the per-round ratios)"
                    )
    return runs


def one_at_a_time(
    plan: Plan,
    ports: dict[str, int],
    payloads: dict[str, bytes],
    tokens: dict[str, str],
    sent: dict[str, int],
    warn: list[str],
) -> dict[str, Any]:
    """Added latency, one request at a time, interleaved batches: short chats, then streams."""
    say(f"sequential: {plan.requests} short requests per target")
    seq = sequential(ports, payloads["short"], plan.requests, plan.seq_warmup, 100, False, tokens)
    say(f"sequential: {plan.stream_requests} streams per target")
    stream_warmup = max(20, plan.seq_warmup // 4)
    seq_stream = sequential(
        ports, payloads["stream20"], plan.stream_requests, stream_warmup, 50, True, tokens
    )
    for name in sent:
        sent[name] += plan.requests + plan.seq_warmup + plan.stream_requests + stream_warmup
    for scenario, s in (("short", seq), ("stream20", seq_stream)):
        for target, n in s["errors"].items():
            if n:
                warn.append(f"INVALID: sequential {scenario} {target}: {n} non-200")
    return {"short": seq, "stream20": seq_stream}


def scripts(
    workdir: Path, payloads: dict[str, bytes], tokens: dict[str, str]
) -> dict[str, dict[str, Path]]:
    """Target -> scenario -> wrk script; one set of scripts per distinct Bearer token."""
    by_token: dict[str, dict[str, Path]] = {}
    for target, token in tokens.items():
        if token not in by_token:
            tag = "" if token == KEY else f"{key_of(target)}-"
            by_token[token] = write_scripts(workdir, payloads, token, tag)
    return {target: by_token[token] for target, token in tokens.items()}


def run(plan: Plan) -> dict[str, Any]:
    """The whole benchmark; the results dict that becomes the JSON."""
    wrk = ensure_wrk()
    payloads = bodies()
    workdir = Path(tempfile.mkdtemp(prefix="crossway-bench-"))
    kids = Children(workdir)
    say(f"work directory (config, bodies, server logs): {workdir}")
    res: dict[str, Any] = {
        "plan": {
            "quick": plan.quick,
            "duration_s": plan.duration,
            "rounds": plan.rounds,
            "connections": CONNECTIONS,
            "sequential_requests": plan.requests,
            "sequential_stream_requests": plan.stream_requests,
            "body_bytes": {k: len(v) for k, v in payloads.items()},
            "server": plan.server,
            "compare_servers": plan.compare_servers,
            "keys": plan.keys,
            "keys_pairs": plan.pairs,
            "keys_pair_seconds": plan.pair_seconds,
            "crossway_servers": plan.crossways,
            "targets": plan.targets,
        },
        "machine": machine_info(wrk),
        "warnings": [],
    }
    warn: list[str] = res["warnings"]
    busy = busy_before_start()
    res["machine"]["busy_percent_before_start"] = busy
    if busy > 15:
        warn.append(
            f"THE MACHINE WAS NOT IDLE before the run ({busy}% of all CPUs busy): "
            "other processes share the CPUs; compare ratios, not absolute figures"
        )
    sent = dict.fromkeys(plan.crossways, 1)  # requests each Crossway answered to clients
    servers: Servers | None = None
    load: Load | None = None
    keys = KeysRun() if plan.keys else None
    try:
        if keys:
            res["plan"]["keys_configs"] = keys.describe()
        servers = start_servers(plan, kids, workdir, payloads["short"], res, keys)
        tokens = dict.fromkeys(servers.ports(), KEY)
        if keys:
            keyed = servers.crossways[CROSSWAY_KEYS]
            tokens[CROSSWAY_KEYS] = keys.make_key(keyed, warn)
            problem = keys.check_first_answer(keyed, payloads["short"])
            sent[CROSSWAY_KEYS] += 1
            res["keys_first_answer"] = problem or f"ok ({keys.header_value})"
            if problem:
                warn.append(f"WRONG ANSWER: {CROSSWAY_KEYS} first answer: {problem}")
        luas = scripts(workdir, payloads, tokens)
        time.sleep(1.0)
        procs = servers.procs()
        pids = {name: proc.pid for name, proc in procs.items()}
        idle = {name: proc_status(pid).get("VmRSS", 0) for name, pid in pids.items()}
        say("idle RSS (MB): " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in idle.items()))
        ports = servers.ports()
        res["answer_checks"] = check_answers(ports, payloads, tokens, sent, warn)
        with RssSampler(pids) as sampler:
            load = Load(wrk, luas, ports, pids, sent, warn)
            runs = throughput(plan, load)
            if plan.pairs:
                say(f"pairs: {plan.pairs} per scenario, {plan.pair_seconds} s per run")
                res["keys_pairs"] = paired(plan.pairs, plan.pair_seconds, load)
            seq = one_at_a_time(plan, ports, payloads, tokens, sent, warn)
        end = {name: proc_status(pid) for name, pid in pids.items()}
        res["rss_mb"] = {
            name: {
                "idle": round(idle[name] / 1024, 1),
                "peak_sampled_under_load": round(sampler.peak[name] / 1024, 1),
                "hwm": round(end[name].get("VmHWM", 0) / 1024, 1),
                "end": round(end[name].get("VmRSS", 0) / 1024, 1),
            }
            for name in pids
        }
        res["throughput_runs"] = runs
        res["throughput"] = summarise(runs, plan.targets, list(plan.crossways), warn)
        res["sequential"] = seq
        for name, proc in reversed(procs.items()):
            if not proc.alive():
                warn.append(f"{name} died during the run: {proc.log_tail()}")
    finally:
        if keys:  # crossway-keys stopped first (it flushes), ledger counted, database dropped
            keyed_proc = servers.crossways[CROSSWAY_KEYS] if servers else None
            # every request crossway-keys answered but the start-up poll was made with the key
            answered = sent[CROSSWAY_KEYS] - 1
            wrk_runs = load.runs.get(CROSSWAY_KEYS, 0) if load else 0
            res.update(keys.finish(keyed_proc, "throughput" in res, answered, wrk_runs, warn))
        kids.stop_all()
    if "throughput" in res and servers is not None:
        for name, proc in servers.crossways.items():
            usage = usage_log_summary(proc.log_path)
            usage["requests_answered_to_clients"] = sent[name]
            res[f"{key_of(name)}_usage_log"] = usage
            label = "Crossway" if name == CROSSWAY else f"Crossway ({name})"
            warn += usage_warnings(label, usage, proc.log_path)
    res["server_log_exceptions"] = {
        f"{p.name}:{p.port}": tracebacks(p.log_path) for p in kids.procs
    }
    if plan.keep or any(w.startswith(("INVALID", "WRONG", "Crossway")) for w in warn):
        res["workdir"] = str(workdir)  # config, bodies and server logs, for a look
    else:
        shutil.rmtree(workdir, ignore_errors=True)  # Crossway's usage log alone is ~80 MB
    return res


def main() -> int:
    """Run, print the table, write the JSON; status 1 when a figure is invalid."""
    plan = parse_plan(__doc__)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (a bg job)
    try:
        res = run(plan)
    except KeyboardInterrupt:
        say("interrupted: child processes stopped")
        return 130
    res["elapsed_s"] = round(time.perf_counter() - T0, 1)
    text = markdown(res)
    res["summary_markdown"] = text
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    for r in res.get("throughput_runs", []):
        if r["valid"]:  # keep wrk's own report only where it explains a failure
            r.pop("wrk_output", None)
    plan.out.write_text(json.dumps(res, indent=2) + "\n")
    print(text)
    say(f"done in {res['elapsed_s']} s; results in {plan.out}")
    return 1 if any(w.startswith(("INVALID", "WRONG")) for w in res["warnings"]) else 0


if __name__ == "__main__":
    sys.exit(main())
