"""The markdown summary of a run, built from the results dict alone (the same as the JSON).

So a saved JSON can be re-rendered, and the table shows exactly what the JSON holds.
"""

from __future__ import annotations

import statistics
from typing import Any

from common import CONNECTIONS, CROSSWAY, CROSSWAY_KEYS, DIRECT, TARGETS, key_of

KEYS_RPS_TARGET = 0.85  # crossway-keys req/s over crossway, at least
KEYS_ADDED_P50_TARGET_MS = 0.6  # crossway-keys added latency p50 (short, sequential), at most


def crossway_servers(res: dict[str, Any]) -> dict[str, str]:
    """Crossway target -> server it ran on (older JSON without the field: uvicorn)."""
    servers: dict[str, str] = res["plan"].get("crossway_servers", {CROSSWAY: "uvicorn"})
    return servers


def _header(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    plan = res["plan"]
    servers = crossway_servers(res)
    pkgs = m["packages"]
    granian = f", granian {pkgs.get('granian')}" if "granian" in servers.values() else ""
    if len(servers) == 1:
        server = next(iter(servers.values()))
        serving = f"Crossway served by {server} (`crossway serve --server {server}`)"
    elif plan.get("keys"):
        server = servers[CROSSWAY]
        serving = (
            f"Crossway served by {server}, twice, interleaved in every round: `crossway` "
            "(master key, no ledger) and `crossway-keys` (a virtual key, Redis limiter, "
            f"ledger in Postgres database {plan['keys_configs']['database']})"
        )
    else:
        serving = "Crossway served by " + " and ".join(
            f"{server} (`{name}`)" for name, server in servers.items()
        )
        serving += ", side by side, interleaved in every round"
    return [
        f"## Crossway benchmark ({'quick' if plan['quick'] else 'full'})",
        "",
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_mb']} MB, Python {m['python']}, "
        f"uvicorn {pkgs['uvicorn']}, uvloop {pkgs['uvloop']}, "
        f"aiohttp {pkgs['aiohttp']}, orjson {pkgs['orjson']}{granian}; "
        f"{m['wrk']}; commit {m['git_commit']}",
        f"wrk -t1 -c{CONNECTIONS}, {plan['rounds']} interleaved round(s) of "
        f"{plan['duration_s']} s; body bytes {plan['body_bytes']}",
        serving,
        "",
    ]


def _ratio_note(per: dict[str, Any], target: str, base: str) -> str | None:
    name = f"{key_of(target)}_over_{key_of(base)}"
    if name not in per:
        return None
    by_round = ", ".join(f"{x:.2f}" for x in per[f"{name}_by_round"])
    return f"{per[name]:.2f}x {base} (rounds: {by_round})"


def _throughput(res: dict[str, Any], targets: list[str]) -> list[str]:
    m = res["machine"]
    crossways = list(crossway_servers(res))
    lines = [
        "### Throughput (32 connections; median of rounds)",
        "",
        "| scenario | target | req/s | (min-max) | p50 ms | p90 ms | p99 ms | errors "
        "| CPU% upstream / proxy / wrk / machine | note |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for scenario, per in res["throughput"].items():
        for target in targets:
            e = per.get(target)
            if e is None:
                continue
            lat = e["latency_ms"]
            cpu = e["cpu_percent"]
            proxy = "-" if target == DIRECT else f"{cpu[target]:.0f}"
            note = []
            if not e["valid"]:
                note.append(f"**INVALID: errors {e['errors']}**")
            if e.get("near_upstream_ceiling"):
                note.append("**within 10% of upstream ceiling**")
            if target in crossways:
                for base in ("floor", *crossways[: crossways.index(target)]):
                    ratio = _ratio_note(per, target, base)
                    if ratio:
                        note.append(ratio)
            if target != DIRECT:
                note.append(f"{e['fraction_of_upstream_ceiling']:.2f}x upstream")
            errors = sum(e["errors"].values())
            lines.append(
                f"| {scenario} | {target} | {e['rps_median']:.0f} | "
                f"{e['rps_min']:.0f}-{e['rps_max']:.0f} | {lat['p50']:.2f} | "
                f"{lat['p90']:.2f} | {lat['p99']:.2f} | {errors} | "
                f"{cpu['upstream']:.0f} / {proxy} / {cpu['wrk']:.0f} / "
                f"{cpu['machine_busy']:.0f} | {'; '.join(note)} |"
            )
    return [
        *lines,
        "",
        "CPU%: per process in % of one core; machine: % of all "
        f"{m['nproc']} CPUs busy. The direct rows are the upstream's ceiling.",
        "",
    ]


def _sequential(res: dict[str, Any], targets: list[str]) -> list[str]:
    s = res["sequential"]["short"]
    lines = [
        f"### One request at a time (short chat, {s['requests_each']} each, keep-alive)",
        "",
        "| target | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        t = s["targets"][target]["total_ms"]
        add = s["targets"][target].get("added_vs_direct", {}).get("total_ms")
        lines.append(
            f"| {target} | {t['p50']:.3f} | {t['p90']:.3f} | {t['p99']:.3f} | "
            + (f"{add['p50']:+.3f} | {add['p99']:+.3f} |" if add else "- | - |")
        )
    st = res["sequential"]["stream20"]
    lines += [
        "",
        f"### One stream at a time (20 chunks, {st['requests_each']} each)",
        "",
        "| target | first byte p50 | first byte p99 | whole stream p50 | whole stream p99 "
        "| added first byte p50 / p99 | added whole p50 / p99 |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for target in targets:
        t = st["targets"][target]
        fb, tot = t["first_byte_ms"], t["total_ms"]
        add = t.get("added_vs_direct")
        extra = (
            f"{add['first_byte_ms']['p50']:+.3f} / {add['first_byte_ms']['p99']:+.3f} | "
            f"{add['total_ms']['p50']:+.3f} / {add['total_ms']['p99']:+.3f} |"
            if add
            else "- | - |"
        )
        lines.append(
            f"| {target} | {fb['p50']:.3f} | {fb['p99']:.3f} | {tot['p50']:.3f} | "
            f"{tot['p99']:.3f} | {extra}"
        )
    return [*lines, ""]


def _memory_and_startup(res: dict[str, Any]) -> list[str]:
    lines = [
        "### Memory and start-up",
        "",
        "| process | RSS idle MB | RSS peak MB (VmHWM) | RSS at end MB |",
        "|---|---:|---:|---:|",
    ]
    for name, r in res["rss_mb"].items():
        lines.append(f"| {name} | {r['idle']} | {r['hwm']} | {r['end']} |")
    su = res["startup_ms"]
    servers = crossway_servers(res)
    if servers == {CROSSWAY: "uvicorn"}:  # the line as it always was
        spawns = (
            f"Spawn of `crossway serve` to first answered chat: median "
            f"{su['crossway_median']:.0f} ms (runs {su['crossway_runs']})"
        )
    else:
        spawns = "Spawn to first answered chat: " + "; ".join(
            f"`crossway serve --server {server}` ({name}) median "
            f"{su[key_of(name) + '_median']:.0f} ms (runs {su[key_of(name) + '_runs']})"
            for name, server in servers.items()
        )
    return [*lines, "", f"{spawns}; floor proxy {su['floor']:.0f} ms.", ""]


def _usage(res: dict[str, Any]) -> list[str]:
    lines = []
    for name in crossway_servers(res):
        u = res.get(f"{key_of(name)}_usage_log")
        if u is None:
            continue
        label = "Crossway usage log" if name == CROSSWAY else f"Crossway usage log ({name})"
        lines += [
            f"{label}: {u['events']} events (status {u['by_status']}) for "
            f"{u['requests_answered_to_clients']} requests answered to clients "
            f"(wrk does not count those cut at the end of a run); "
            f"{u['queue_full_warnings']} queue-full warnings, {u['error_lines']} error "
            "lines.",
            "",
        ]
    return lines


def _mark(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def _keys_cpu(runs: list[dict[str, Any]]) -> list[str]:
    """Where the --keys gap comes from, as medians over the rounds: each gateway's own CPU per
    request (its code), the share of a CPU it got and how long it waited for one (others on
    the machine had it), and the CPU Postgres and Redis took while crossway-keys ran."""

    def median(scenario: str, target: str, get: Any) -> float | None:
        values = [get(r) for r in runs if r["scenario"] == scenario and r["target"] == target]
        values = sorted(v for v in values if v is not None)
        return values[len(values) // 2] if values else None

    lines = [
        "",
        "Where the difference comes from (medians over the rounds): CPU per request is each "
        "gateway's own work; a gateway that got less than a whole CPU waited for one while "
        "others on the machine (Postgres, Redis, the upstream, wrk) had it.",
        "",
        "| scenario | CPU us per request: crossway / crossway-keys (ratio) | CPU used: crossway "
        "/ crossway-keys | waited for a CPU: crossway / crossway-keys | Postgres + Redis "
        "CPU while crossway-keys ran |",
        "|---|---|---|---|---|",
    ]
    scenarios = dict.fromkeys(r["scenario"] for r in runs if r["target"] == CROSSWAY_KEYS)
    for scenario in scenarios:
        us = [
            median(scenario, t, lambda r, t=t: r.get("cpu_us_per_request", {}).get(t))
            for t in (CROSSWAY, CROSSWAY_KEYS)
        ]
        used = [
            median(scenario, t, lambda r, t=t: r["cpu_percent"].get(t))
            for t in (CROSSWAY, CROSSWAY_KEYS)
        ]
        waited = [
            median(scenario, t, lambda r, t=t: r.get("run_queue_wait_percent", {}).get(t))
            for t in (CROSSWAY, CROSSWAY_KEYS)
        ]
        services = [
            median(scenario, CROSSWAY_KEYS, lambda r, n=n: r["cpu_percent"].get(n))
            for n in ("postgres", "redis")
        ]
        master_us, keyed_us = us
        if master_us is None or keyed_us is None or None in used or None in waited:
            continue  # a run from before these were measured
        ratio = master_us / keyed_us if keyed_us else 0.0
        shared = " + ".join(f"{v:.1f}%" if v is not None else "?" for v in services)
        lines.append(
            f"| {scenario} | {us[0]:.0f} / {us[1]:.0f} ({ratio:.3f}) | {used[0]:.1f}% / "
            f"{used[1]:.1f}% | {waited[0]:.1f}% / {waited[1]:.1f}% | {shared} |"
        )
    return lines


def _keys_pairs(pairs: dict[str, Any]) -> list[str]:
    """--keys pairs (paired.py): short runs of the two gateways back to back, many times."""
    if not pairs:
        return []
    first = next(iter(pairs.values()))
    lines = [
        "",
        f"In {first['pairs']} pairs per scenario (the two gateways back to back, the order "
        "swapped every pair), less exposed to the machine's drift than three rounds:",
        "",
        f"| scenario | median of the pairs' ratios (target >= {KEYS_RPS_TARGET}) | quartiles "
        "| ratio of the summed requests | CPU us per request: crossway / crossway-keys |",
        "|---|---|---|---:|---|",
    ]
    for scenario, got in pairs.items():
        low, high = got["quartiles"]
        cpu = got["cpu_us_per_request_median"]
        cpus = " / ".join("-" if cpu[t] is None else f"{cpu[t]:.0f}" for t in cpu)
        lines.append(
            f"| {scenario} | {got['median_ratio']:.3f} "
            f"{_mark(got['median_ratio'] >= KEYS_RPS_TARGET)} | {low:.3f} - {high:.3f} | "
            f"{got['ratio_of_sums']:.3f} | {cpus} |"
        )
    return lines


def _keys(res: dict[str, Any]) -> list[str]:
    """--keys: crossway-keys against crossway (throughput ratio, added latency) and whether
    the Postgres ledger kept up."""
    lines = [
        "### Keys, limits and ledger: `crossway-keys` against `crossway`",
        "",
        f"| scenario | crossway req/s | crossway-keys req/s | ratio of the medians (target >= "
        f"{KEYS_RPS_TARGET}) | median of the ratios inside each round | ratio by round |",
        "|---|---:|---:|---|---:|---|",
    ]
    name = f"{key_of(CROSSWAY_KEYS)}_over_{key_of(CROSSWAY)}"
    for scenario, per in res.get("throughput", {}).items():
        if name not in per:
            continue
        rounds = per[f"{name}_by_round"]
        by_round = ", ".join(f"{x:.3f}" for x in rounds)
        # paired: each round's two runs are minutes closer than the medians may be
        paired = f"{statistics.median(rounds):.3f}" if rounds else "-"
        lines.append(
            f"| {scenario} | {per[CROSSWAY]['rps_median']:.0f} | "
            f"{per[CROSSWAY_KEYS]['rps_median']:.0f} | {per[name]:.3f} "
            f"{_mark(per[name] >= KEYS_RPS_TARGET)} | {paired} | {by_round} |"
        )
    lines += _keys_pairs(res.get("keys_pairs", {}))
    lines += _keys_cpu(res.get("throughput_runs", []))
    spec = res.get("crossway_keys_key_spec")
    first = res.get("keys_first_answer")
    lines += ["", f"The key: {spec}; first answer with it: {first}.", ""]
    seq = res.get("sequential", {})
    for scenario, label in (("short", "short chat"), ("stream20", "stream (whole)")):
        targets = seq.get(scenario, {}).get("targets", {})
        if CROSSWAY_KEYS not in targets:
            continue
        keyed = targets[CROSSWAY_KEYS]["added_vs_direct"]["total_ms"]
        base = targets[CROSSWAY]["added_vs_direct"]["total_ms"]
        mark = (
            f" (target <= {KEYS_ADDED_P50_TARGET_MS} ms: "
            f"{_mark(keyed['p50'] <= KEYS_ADDED_P50_TARGET_MS)})"
            if scenario == "short"
            else ""
        )
        lines.append(
            f"One at a time, {label}: crossway-keys added p50 {keyed['p50']:+.3f} ms{mark}, "
            f"p99 {keyed['p99']:+.3f} ms; crossway added p50 {base['p50']:+.3f} ms, p99 "
            f"{base['p99']:+.3f} ms (so keys + limits + ledger cost "
            f"{keyed['p50'] - base['p50']:+.3f} ms at p50)."
        )
    lines.append("")
    led = res.get("crossway_keys_ledger")
    if led:
        verdict = (
            "the ledger kept up"
            if led["kept_up"]
            else f"**LEDGER SHORTFALL: {led['shortfall']} rows missing**"
            if led["shortfall"]
            else "**more rows than wrk's cut requests explain**"
        )
        lines += [
            f"Ledger (Postgres, counted after SIGTERM; stopped cleanly: "
            f"{led.get('stopped_cleanly')}, exit code {led['exit_code_after_sigterm']}, usage "
            f"events dropped {led.get('usage_events_dropped_at_stop')}): "
            f"{led['rows_with_key']} rows with the key "
            f"(status {led['rows_with_key_by_status']}) for {led['requests_answered_with_key']} "
            f"requests answered with it ({led['rows_minus_answered']:+d}; wrk may cut up to "
            f"{led['cut_allowance']}); {led['rows_total']} rows in all: {verdict}.",
            "",
        ]
    return lines


def markdown(res: dict[str, Any]) -> str:
    """The printed summary: header, throughput, sequential latency, memory, warnings."""
    targets: list[str] = res["plan"].get("targets", list(TARGETS))
    lines = _header(res)
    if "throughput" in res:
        lines += _throughput(res, targets)
    if "sequential" in res:
        lines += _sequential(res, targets)
    if "rss_mb" in res:
        lines += _memory_and_startup(res)
    if res["plan"].get("keys"):
        lines += _keys(res)
    lines += _usage(res)
    exc = {k: v for k, v in res.get("server_log_exceptions", {}).items() if v}
    if exc:
        lines += [
            f"Exceptions in server logs (streams cut by wrk at the end of a run show up "
            f"here): {exc}",
            "",
        ]
    if res["warnings"]:
        lines += ["### WARNINGS", ""] + [f"- **{w}**" for w in res["warnings"]] + [""]
    else:
        lines += [
            "No warnings: every figure valid (no errors, no non-2xx), upstream not "
            "within 10% of its ceiling.",
            "",
        ]
    return "\n".join(lines)
