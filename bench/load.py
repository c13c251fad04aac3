"""Throughput under load: wrk with a Lua script per body, and the summary over rounds.

wrk's own text output is parsed only for the non-2xx count and its req/s line; the figures
come from a JSON line the Lua `done` hook prints, so no unit parsing of "1.23ms" is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import CHAT_PATH, CONNECTIONS, DIRECT, FLOOR, KEY, SCENARIOS, key_of, say
from procs import children_cpu, cpu_of_named, cpu_seconds, run_queue_wait, system_cpu

LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"bytes\\":%%d," ..
    "\\"connect\\":%%d,\\"read\\":%%d,\\"write\\":%%d,\\"status\\":%%d,\\"timeout\\":%%d," ..
    "\\"p50\\":%%.1f,\\"p90\\":%%.1f,\\"p99\\":%%.1f,\\"p999\\":%%.1f,\\"max\\":%%.1f," ..
    "\\"mean\\":%%.1f}\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


SHARED_SERVICES = {"postgres": "postgres", "redis": "redis-server"}  # name -> process name


def ensure_command(command: str, package: str) -> str:
    """The command's path; installs its Debian package with apt-get when it is missing, and
    says so."""
    found = shutil.which(command)
    if found:
        return found
    say(f"{command} is missing: installing the Debian package {package} (apt-get update first)")
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([*apt, "install", "-y", package], check=True, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which(command)
    if not found:
        raise RuntimeError(f"{command} is still missing after apt-get install {package}")
    say(f"installed {command} at {found}")
    return found


def ensure_wrk() -> str:
    return ensure_command("wrk", "wrk")


def write_scripts(
    workdir: Path, payloads: dict[str, bytes], token: str = KEY, tag: str = ""
) -> dict[str, Path]:
    """Scenario -> Lua script for wrk sending this Bearer token, each reading its body from
    a file beside it; tag prefixes the script names (one set per token)."""
    luas: dict[str, Path] = {}
    for name, body in payloads.items():
        body_file = workdir / f"{name}.json"
        body_file.write_bytes(body)
        luas[name] = workdir / f"{tag}{name}.lua"
        luas[name].write_text(LUA % {"key": token, "body": body_file})
    return luas


@dataclass
class Load:
    """What every wrk run of a bench needs: wrk, each target's script per scenario and
    port, the processes whose CPU is read, and the running counts and warnings."""

    wrk: str
    luas: dict[str, dict[str, Path]]  # target -> scenario -> script (its own Bearer token)
    ports: dict[str, int]
    pids: dict[str, int]
    sent: dict[str, int]  # requests each Crossway answered to clients
    warn: list[str]
    runs: dict[str, int] = field(default_factory=dict)  # wrk runs per target, so far

    def run(self, target: str, scenario: str, seconds: int) -> dict[str, Any]:
        """One wrk run against a target, counted in `sent` and `runs`."""
        r = run_wrk(self.wrk, self.luas[target][scenario], self.ports[target], seconds, self.pids)
        if target in self.sent:
            self.sent[target] += r["requests"]
        self.runs[target] = self.runs.get(target, 0) + 1
        return r


def run_wrk(
    wrk: str,
    lua: Path,
    port: int,
    duration: int,
    pids: dict[str, int],
    path: str = CHAT_PATH,
) -> dict[str, Any]:
    """One wrk run at CONNECTIONS connections (a chat unless `path` says otherwise): req/s,
    latency, errors and everyone's CPU."""
    cmd = [
        wrk,
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}{path}",
    ]
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wait_before = {name: run_queue_wait(pid) for name, pid in pids.items()}
    shared_before = {name: cpu_of_named(process) for name, process in SHARED_SERVICES.items()}
    wrk_before = children_cpu()
    sys_before = system_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wall = time.perf_counter() - started
    ticks = [b - a for a, b in zip(sys_before, system_cpu(), strict=True)]
    all_ticks = sum(ticks) or 1
    used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu = {name: round(100 * seconds / wall, 1) for name, seconds in used.items()}
    # the databases the gateways use, on this machine: CPU they take from the rest
    for name, process in SHARED_SERVICES.items():
        before, after = shared_before[name], cpu_of_named(process)
        if before is not None and after is not None:
            cpu[name] = round(100 * (after - before) / wall, 1)
    cpu["wrk"] = round(100 * (children_cpu() - wrk_before) / wall, 1)
    # the whole machine, in % of all CPUs: busy (not idle, not iowait) and stolen
    cpu["machine_busy"] = round(100 * (all_ticks - ticks[3] - ticks[4]) / all_ticks, 1)
    cpu["machine_steal"] = round(100 * ticks[7] / all_ticks, 1)
    out = done.stdout
    match = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    data = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    rps_line = re.search(r"Requests/sec:\s*([\d.]+)", out)
    errors = {
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else data["status"],
        "connect": data["connect"],
        "read": data["read"],
        "write": data["write"],
        "timeout": data["timeout"],
    }
    seconds = data["duration_us"] / 1e6
    requests = data["requests"] or 1
    return {
        "requests": data["requests"],
        "seconds": round(seconds, 3),
        "rps": round(data["requests"] / seconds, 1) if seconds else 0.0,
        "rps_wrk": float(rps_line.group(1)) if rps_line else None,
        "latency_ms": {
            k: round(data[k] / 1000, 3) for k in ("p50", "p90", "p99", "p999", "max", "mean")
        },
        "errors": errors,
        "valid": not any(errors.values()) and data["requests"] > 0,
        "cpu_percent": cpu,
        # each server's CPU per answered request, and the time it was ready to run but
        # waited for a CPU (others on the machine had it)
        "cpu_us_per_request": {name: round(1e6 * t / requests, 1) for name, t in used.items()},
        "run_queue_wait_percent": {
            name: round(100 * (run_queue_wait(pid) - wait_before[name]) / wall, 1)
            for name, pid in pids.items()
        },
        "wrk_output": out,
    }


def _per_target(mine: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in mine]
    return {
        "rps_median": round(statistics.median(rps), 1),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "latency_ms": {
            q: round(statistics.median(r["latency_ms"][q] for r in mine), 3)
            for q in ("p50", "p90", "p99", "max")
        },
        "errors": {k: sum(r["errors"][k] for r in mine) for k in mine[0]["errors"]},
        "valid": all(r["valid"] for r in mine),
        "cpu_percent": {  # a service (Postgres, Redis) may be seen in some runs only
            k: round(statistics.median(r["cpu_percent"].get(k, 0.0) for r in mine), 1)
            for k in dict.fromkeys(k for r in mine for k in r["cpu_percent"])
        },
    }


def _ratio(
    per: dict[str, Any], runs: list[dict[str, Any]], scenario: str, target: str, base: str
) -> None:
    """`<target>_over_<base>` (medians) and the same ratio inside each round, where both
    met the same conditions, into per."""
    if target not in per or base not in per:
        return
    name = f"{key_of(target)}_over_{key_of(base)}"
    per[name] = round(per[target]["rps_median"] / per[base]["rps_median"], 3)
    base_by_round = {
        r["round"]: r["rps"] for r in runs if r["scenario"] == scenario and r["target"] == base
    }
    per[f"{name}_by_round"] = [
        round(r["rps"] / base_by_round[r["round"]], 3)
        for r in runs
        if r["scenario"] == scenario and r["target"] == target and base_by_round.get(r["round"])
    ]


def summarise(
    runs: list[dict[str, Any]], targets: list[str], crossways: list[str], warn: list[str]
) -> dict[str, Any]:
    """Scenario -> target -> medians over rounds, plus each Crossway's ratio to the floor
    (and, when servers are compared, to the first Crossway). Warns when a proxy is capped
    by the upstream."""
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        per: dict[str, Any] = {}
        for target in targets:
            mine = [r for r in runs if r["scenario"] == scenario and r["target"] == target]
            if mine:
                per[target] = _per_target(mine)
        ceiling = per[DIRECT]["rps_median"]
        for target in targets:
            entry = per.get(target)
            if target == DIRECT or entry is None:
                continue
            entry["fraction_of_upstream_ceiling"] = round(entry["rps_median"] / ceiling, 3)
            entry["near_upstream_ceiling"] = entry["rps_median"] >= 0.9 * ceiling
            if entry["near_upstream_ceiling"]:
                warn.append(
                    f"UPSTREAM MAY BE THE BOTTLENECK: {scenario} {target} at "
                    f"{entry['rps_median']:.0f} req/s is within 10% of the upstream's "
                    f"{ceiling:.0f}"
                )
            if entry["cpu_percent"].get("upstream", 0) >= 90:
                warn.append(
                    f"UPSTREAM SATURATED: during {scenario} {target} the upstream used "
                    f"{entry['cpu_percent']['upstream']}% of a core"
                )
        for crossway in crossways:
            _ratio(per, runs, scenario, crossway, FLOOR)
        for crossway in crossways[1:]:
            _ratio(per, runs, scenario, crossway, crossways[0])
        out[scenario] = per
    return out
