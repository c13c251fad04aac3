"""Crossway's benchmark: the gateway side by side with a 30-line floor proxy and the upstream.

    .venv/bin/python bench/run.py [--quick] [--duration S] [--rounds R] [--requests N]
                                  [--out bench/results/latest.json]

One run starts three processes on 127.0.0.1 (the simulated upstream with zero delay, the floor
proxy in bench/floor_proxy.py, and `crossway serve`), then measures, interleaved in rounds:

  * throughput at 32 connections with wrk: short chat, stream of 20 chunks, long (~50 KB) chat;
    upstream direct first in every round (its ceiling), then floor and Crossway in
    alternating order;
  * added latency one request at a time over one keep-alive connection, interleaved batches;
  * RSS of Crossway idle and under load, and the time from spawn to the first answered chat.

It prints a markdown summary and writes JSON. Every child process is killed at the end.
See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
KEY = "sk-bench"
MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
CONNECTIONS = 32
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
TARGETS = ("direct", "floor", "crossway")
SCENARIOS = ("short", "stream20", "long")
CLK_TCK = os.sysconf("SC_CLK_TCK")
T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- request bodies ------------------------------------------------------------------------


def _short_messages() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Summarise the plot of Hamlet in two sentences, please. "
         "Mention the ghost, the play within the play and the ending."},
    ]


def bodies() -> dict[str, bytes]:
    short = {"model": MODEL, "messages": _short_messages(), "max_tokens": 128,
             "temperature": 0.2, "user": "bench-user-0001"}
    stream = {**short, "stream": True, "simulate": {"chunks": 20}}
    paragraph = ("The quick brown fox jumps over the lazy dog while the benchmark measures "
                 "how many bytes a gateway can move per second without getting in the way. ")
    messages: list[dict[str, str]] = [{"role": "system", "content": "You review documents."}]
    for i in range(10):  # ten turns of ~5 KB: ~50 KB in all
        text = f"Part {i}: " + paragraph * 32
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    messages.append({"role": "user", "content": "Which part mentions the fox first?"})
    long = {"model": MODEL, "messages": messages, "max_tokens": 128}
    return {name: json.dumps(body, separators=(",", ":")).encode()
            for name, body in (("short", short), ("stream20", stream), ("long", long))}


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # children get SIGKILL if this script dies, even by SIGKILL
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float  # perf_counter just before the spawn

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM to its process group (it may flush), SIGKILL after 10 s. Signals go only
        while the leader is unreaped, so the group id cannot belong to anyone else."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)

    def log_tail(self, n: int = 15) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        return ""


class Children:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def spawn(self, name: str, port: int, argv: list[str]) -> Proc:
        log_path = self.workdir / f"{name}-{port}.log"
        log = log_path.open("wb")
        started = time.perf_counter()
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=self.workdir, env=child_env(),
                                 start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        proc = Proc(name, port, popen, log_path, started)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # kB
    return out


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return 0.0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class RssSampler:
    """Samples VmRSS of the servers every 0.2 s while the load runs; keeps the maximum."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                rss = proc_status(pid).get("VmRSS", 0)
                self.peak[name] = max(self.peak[name], rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- HTTP clients ----------------------------------------------------------------------------


def post_once(port: int, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", CHAT_PATH, body, HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_first_answer(proc: Proc, body: bytes, deadline_s: float = 60.0) -> float:
    """Poll with a real chat request every 10 ms; seconds from spawn to the first 200."""
    limit = proc.spawned_at + deadline_s
    while True:
        tick = time.perf_counter()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n"
                               f"{proc.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = post_once(proc.port, body, timeout=5.0)
            if status == 200:
                return time.perf_counter() - proc.spawned_at
        if tick > limit:
            raise RuntimeError(f"{proc.name} did not answer within {deadline_s} s:\n"
                               f"{proc.log_tail()}")
        time.sleep(max(0.0, 0.010 - (time.perf_counter() - tick)))


def check_answer(scenario: str, status: int, raw: bytes) -> str | None:
    """None when the answer is what the scenario expects, else what is wrong."""
    if status != 200:
        return f"status {status}: {raw[:200]!r}"
    if scenario != "stream20":
        try:
            doc = json.loads(raw)
            content = doc["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return f"not a chat completion ({type(exc).__name__}): {raw[:200]!r}"
        return None if isinstance(content, str) and content else "empty content"
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    datas = [line[5:].strip() for line in text.split("\n") if line.startswith("data:")]
    if not datas or datas[-1] != "[DONE]":
        return f"stream does not end with [DONE]: {raw[-200:]!r}"
    content_chunks = 0
    for data in datas[:-1]:
        try:
            chunk = json.loads(data)
        except ValueError:
            return f"an event is not JSON: {data[:200]!r}"
        if "usage" in chunk:
            return f"a usage field reached a client that did not ask for it: {data[:200]!r}"
        delta = (chunk.get("choices") or [{}])[0].get("delta", {})
        if delta.get("content"):
            content_chunks += 1
    return None if content_chunks == 20 else f"{content_chunks} content chunks, expected 20"


# --- wrk -------------------------------------------------------------------------------------

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


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing the Debian package with apt-get (apt-get update first)")
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([*apt, "install", "-y", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install")
    say(f"installed wrk at {found}")
    return found


def run_wrk(wrk: str, lua: Path, port: int, duration: int, pids: dict[str, int]
            ) -> dict[str, Any]:
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "10s", "--latency",
           "-s", str(lua), f"http://127.0.0.1:{port}{CHAT_PATH}"]
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wrk_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wall = time.perf_counter() - started
    cpu = {name: round(100 * (cpu_seconds(pid) - cpu_before[name]) / wall, 1)
           for name, pid in pids.items()}
    cpu["wrk"] = round(100 * (children_cpu() - wrk_before) / wall, 1)
    out = done.stdout
    match = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    data = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rps_line = re.search(r"Requests/sec:\s*([\d.]+)", out)
    errors = {
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else data["status"],
        "connect": data["connect"], "read": data["read"], "write": data["write"],
        "timeout": data["timeout"],
    }
    seconds = data["duration_us"] / 1e6
    return {
        "requests": data["requests"],
        "seconds": round(seconds, 3),
        "rps": round(data["requests"] / seconds, 1) if seconds else 0.0,
        "rps_wrk": float(rps_line.group(1)) if rps_line else None,
        "latency_ms": {k: round(data[k] / 1000, 3) for k in ("p50", "p90", "p99", "p999",
                                                             "max", "mean")},
        "errors": errors,
        "valid": not any(errors.values()) and data["requests"] > 0,
        "cpu_percent": cpu,
        "wrk_output": out,
    }


# --- one request at a time -----------------------------------------------------------------


def keepalive(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def timed(conn: http.client.HTTPConnection, body: bytes, stream: bool
          ) -> tuple[int, int, int | None]:
    """(status, total ns, first body byte ns for streams) of one request on a live connection."""
    t0 = time.perf_counter_ns()
    conn.request("POST", CHAT_PATH, body, HEADERS)
    resp = conn.getresponse()
    first = None
    if stream:
        resp.read1(65536)
        first = time.perf_counter_ns() - t0
    resp.read()
    return resp.status, time.perf_counter_ns() - t0, first


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def sequential(ports: dict[str, int], body: bytes, n: int, warmup: int, batch: int,
               stream: bool) -> dict[str, Any]:
    conns = {name: keepalive(port) for name, port in ports.items()}
    total: dict[str, list[float]] = {name: [] for name in ports}
    first: dict[str, list[float]] = {name: [] for name in ports}
    errors = dict.fromkeys(ports, 0)
    names = list(ports)
    try:
        for name in names:
            for _ in range(warmup):
                timed(conns[name], body, stream)
        rounds = math.ceil(n / batch)
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                conn = conns[name]
                for _ in range(min(batch, n - r * batch)):
                    status, ns, first_ns = timed(conn, body, stream)
                    if status != 200:
                        errors[name] += 1
                    total[name].append(ns / 1e6)
                    if first_ns is not None:
                        first[name].append(first_ns / 1e6)
    finally:
        for conn in conns.values():
            conn.close()

    def summary(samples: list[float]) -> dict[str, float]:
        return {"p50": round(pct(samples, 50), 4), "p90": round(pct(samples, 90), 4),
                "p99": round(pct(samples, 99), 4), "mean": round(statistics.fmean(samples), 4),
                "min": round(min(samples), 4)}

    out: dict[str, Any] = {"requests_each": n, "warmup_each": warmup, "batch": batch,
                           "errors": errors, "targets": {}}
    for name in names:
        entry: dict[str, Any] = {"total_ms": summary(total[name])}
        if stream:
            entry["first_byte_ms"] = summary(first[name])
        out["targets"][name] = entry
    for name in names:
        if name == "direct":
            continue
        added: dict[str, Any] = {}
        for metric in ("total_ms", "first_byte_ms") if stream else ("total_ms",):
            mine, base = out["targets"][name][metric], out["targets"]["direct"][metric]
            added[metric] = {q: round(mine[q] - base[q], 4) for q in ("p50", "p90", "p99")}
        out["targets"][name]["added_vs_direct"] = added
    return out


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Plan:
    quick: bool
    duration: int
    rounds: int
    warmup_s: int
    requests: int
    stream_requests: int
    seq_warmup: int
    startups: int
    out: Path


def machine_info(wrk: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    versions = {}
    for pkg in ("uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "crossway"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "crossway"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "wrk": wrk_version.splitlines()[0] if wrk_version else None,
        "git_commit": commit + (" (crossway/ modified)" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


def crossway_config(workdir: Path, upstream_port: int) -> Path:
    path = workdir / "crossway.yaml"
    path.write_text(
        f"master_key: {KEY}\n"
        "log_requests: true\n"
        f'database_url: "sqlite:///{workdir}/crossway.db"\n'
        "providers:\n"
        f'  sim: {{type: openai-compatible, base_url: "http://127.0.0.1:{upstream_port}/v1", '
        f"models: [{MODEL}]}}\n")
    return path


def spawn_crossway(kids: Children, config: Path) -> Proc:
    port = free_port()
    exe = Path(PYTHON).parent / "crossway"
    argv = [str(exe)] if exe.exists() else [PYTHON, "-m", "crossway"]
    return kids.spawn("crossway", port, [*argv, "serve", "--config", str(config),
                                         "--port", str(port)])


def usage_log_summary(log_path: Path) -> dict[str, Any]:
    """What Crossway's usage log recorded: events by status, queue-full warnings."""
    statuses: dict[str, int] = {}
    events = warnings = errors = 0
    with log_path.open("rb") as f:
        for line in f:
            if b"crossway.usage:" in line and b'{"request_id"' in line:
                events += 1
                doc = json.loads(line[line.index(b"{"):])
                key = str(doc.get("status"))
                statuses[key] = statuses.get(key, 0) + 1
            elif b"usage queue full" in line:
                warnings += 1
            elif b" ERROR " in line or b"Traceback" in line:
                errors += 1
    return {"events": events, "by_status": statuses, "queue_full_warnings": warnings,
            "error_lines": errors}


def run(plan: Plan) -> dict[str, Any]:
    wrk = ensure_wrk()
    payloads = bodies()
    workdir = Path(tempfile.mkdtemp(prefix="crossway-bench-"))
    kids = Children(workdir)
    res: dict[str, Any] = {
        "plan": {"quick": plan.quick, "duration_s": plan.duration, "rounds": plan.rounds,
                 "connections": CONNECTIONS, "sequential_requests": plan.requests,
                 "sequential_stream_requests": plan.stream_requests,
                 "body_bytes": {k: len(v) for k, v in payloads.items()}},
        "machine": machine_info(wrk),
        "warnings": [],
    }
    warn: list[str] = res["warnings"]
    body_files = {}
    luas = {}
    for name, body in payloads.items():
        body_files[name] = workdir / f"{name}.json"
        body_files[name].write_bytes(body)
        luas[name] = workdir / f"{name}.lua"
        luas[name].write_text(LUA % {"key": KEY, "body": body_files[name]})
    sent_to_crossway = 0
    try:
        # 1. the upstream, its own process, zero delay
        up_port = free_port()
        upstream = kids.spawn("upstream", up_port, [PYTHON, "-m", "crossway.testing.upstream",
                                                    "--port", str(up_port)])
        wait_first_answer(upstream, payloads["short"])
        say(f"upstream ready on :{up_port} (pid {upstream.pid})")

        # 6. start-up time of Crossway: spawn to the first answered chat (the last one stays up)
        config = crossway_config(workdir, up_port)
        startup: list[float] = []
        crossway: Proc | None = None
        for i in range(plan.startups):
            crossway = spawn_crossway(kids, config)
            startup.append(wait_first_answer(crossway, payloads["short"]))
            sent_to_crossway += 1
            say(f"crossway start {i + 1}/{plan.startups}: first answer after "
                f"{startup[-1] * 1000:.0f} ms (pid {crossway.pid})")
            if i < plan.startups - 1:
                crossway.stop()
        assert crossway is not None
        floor_port = free_port()
        floor = kids.spawn("floor", floor_port, [
            PYTHON, str(BENCH / "floor_proxy.py"), "--port", str(floor_port),
            "--upstream", f"http://127.0.0.1:{up_port}"])
        floor_start = wait_first_answer(floor, payloads["short"])
        say(f"floor proxy ready on :{floor_port} after {floor_start * 1000:.0f} ms")
        res["startup_ms"] = {
            "crossway_runs": [round(s * 1000, 1) for s in startup],
            "crossway_median": round(statistics.median(startup) * 1000, 1),
            "floor": round(floor_start * 1000, 1),
            "method": "perf_counter before spawn -> first 200 to a real chat request, "
                      "polled every 10 ms",
        }
        time.sleep(1.0)
        pids = {"upstream": upstream.pid, "floor": floor.pid, "crossway": crossway.pid}
        idle = {name: proc_status(pid).get("VmRSS", 0) for name, pid in pids.items()}
        say("idle RSS (MB): " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in idle.items()))
        ports = {"direct": up_port, "floor": floor_port, "crossway": crossway.port}

        # correctness first: each target answers each scenario as expected
        checks: dict[str, dict[str, str]] = {}
        for target, port in ports.items():
            for scenario in SCENARIOS:
                status, raw = post_once(port, payloads[scenario], timeout=10)
                sent_to_crossway += target == "crossway"
                problem = check_answer(scenario, status, raw)
                checks.setdefault(target, {})[scenario] = problem or "ok"
                if problem:
                    warn.append(f"WRONG ANSWER: {target} {scenario}: {problem}")
        res["answer_checks"] = checks

        # 3. throughput at 32 connections, interleaved rounds
        runs: list[dict[str, Any]] = []
        with RssSampler(pids) as sampler:
            say(f"warm-up: {plan.warmup_s} s per target and scenario")
            for scenario in SCENARIOS:
                for target in TARGETS:
                    w = run_wrk(wrk, luas[scenario], ports[target], plan.warmup_s, pids)
                    if target == "crossway":
                        sent_to_crossway += w["requests"]
            for rnd in range(plan.rounds):
                for scenario in SCENARIOS:
                    order = ["direct", "floor", "crossway"] if rnd % 2 == 0 else \
                        ["direct", "crossway", "floor"]
                    for target in order:
                        r = run_wrk(wrk, luas[scenario], ports[target], plan.duration, pids)
                        if target == "crossway":
                            sent_to_crossway += r["requests"]
                        r.update(round=rnd + 1, scenario=scenario, target=target)
                        runs.append(r)
                        say(f"round {rnd + 1} {scenario:8} {target:8} {r['rps']:8.0f} req/s  "
                            f"p50 {r['latency_ms']['p50']:.2f} ms  p99 "
                            f"{r['latency_ms']['p99']:.2f} ms  cpu {r['cpu_percent']}"
                            + ("" if r["valid"] else f"  INVALID {r['errors']}"))
                        if not r["valid"]:
                            warn.append(f"INVALID: {scenario} {target} round {rnd + 1}: "
                                        f"errors {r['errors']}")

            # 4. added latency, one request at a time, interleaved batches
            say(f"sequential: {plan.requests} short requests per target")
            seq = sequential(ports, payloads["short"], plan.requests, plan.seq_warmup, 100,
                             stream=False)
            say(f"sequential: {plan.stream_requests} streams per target")
            seq_stream = sequential(ports, payloads["stream20"], plan.stream_requests,
                                    max(20, plan.seq_warmup // 4), 50, stream=True)
            sent_to_crossway += plan.requests + plan.seq_warmup
            sent_to_crossway += plan.stream_requests + max(20, plan.seq_warmup // 4)
            for name, s in (("short", seq), ("stream20", seq_stream)):
                for target, n in s["errors"].items():
                    if n:
                        warn.append(f"INVALID: sequential {name} {target}: {n} non-200")
        peak_sampled = sampler.peak
        end = {name: proc_status(pid) for name, pid in pids.items()}
        res["rss_mb"] = {name: {
            "idle": round(idle[name] / 1024, 1),
            "peak_sampled_under_load": round(peak_sampled[name] / 1024, 1),
            "hwm": round(end[name].get("VmHWM", 0) / 1024, 1),
            "end": round(end[name].get("VmRSS", 0) / 1024, 1),
        } for name in pids}
        res["throughput_runs"] = runs
        res["throughput"] = summarise(runs, plan.rounds, warn)
        res["sequential"] = {"short": seq, "stream20": seq_stream}
        for name in ("crossway", "floor", "upstream"):
            proc = {"crossway": crossway, "floor": floor, "upstream": upstream}[name]
            if not proc.alive():
                warn.append(f"{name} died during the run: {proc.log_tail()}")
    finally:
        kids.stop_all()
    if "throughput" in res:
        usage = usage_log_summary(crossway.log_path)
        usage["requests_answered_to_clients"] = sent_to_crossway
        res["crossway_usage_log"] = usage
        if usage["events"] < sent_to_crossway:
            warn.append(f"Crossway logged {usage['events']} usage events for at least "
                        f"{sent_to_crossway} answered requests (events lost)")
        if usage["error_lines"]:
            warn.append(f"Crossway's log has {usage['error_lines']} error lines "
                        f"({crossway.log_path})")
    res["workdir"] = str(workdir)
    return res


def summarise(runs: list[dict[str, Any]], rounds: int, warn: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        per: dict[str, Any] = {}
        for target in TARGETS:
            mine = [r for r in runs if r["scenario"] == scenario and r["target"] == target]
            if not mine:
                continue
            rps = [r["rps"] for r in mine]
            per[target] = {
                "rps_median": round(statistics.median(rps), 1),
                "rps_min": min(rps), "rps_max": max(rps),
                "latency_ms": {q: round(statistics.median(r["latency_ms"][q] for r in mine), 3)
                               for q in ("p50", "p90", "p99", "max")},
                "errors": {k: sum(r["errors"][k] for r in mine) for k in mine[0]["errors"]},
                "valid": all(r["valid"] for r in mine),
                "cpu_percent": {k: round(statistics.median(r["cpu_percent"][k] for r in mine), 1)
                                for k in mine[0]["cpu_percent"]},
            }
        ceiling = per["direct"]["rps_median"]
        for target in ("floor", "crossway"):
            entry = per.get(target)
            if entry is None:
                continue
            entry["fraction_of_upstream_ceiling"] = round(entry["rps_median"] / ceiling, 3)
            entry["near_upstream_ceiling"] = entry["rps_median"] >= 0.9 * ceiling
            if entry["near_upstream_ceiling"]:
                warn.append(f"UPSTREAM MAY BE THE BOTTLENECK: {scenario} {target} at "
                            f"{entry['rps_median']:.0f} req/s is within 10% of the upstream's "
                            f"{ceiling:.0f}")
            if entry["cpu_percent"].get("upstream", 0) >= 90:
                warn.append(f"UPSTREAM SATURATED: during {scenario} {target} the upstream used "
                            f"{entry['cpu_percent']['upstream']}% of a core")
        if "floor" in per and "crossway" in per:
            per["crossway_over_floor"] = round(
                per["crossway"]["rps_median"] / per["floor"]["rps_median"], 3)
        out[scenario] = per
    return out


# --- report ----------------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"## Crossway benchmark ({'quick' if res['plan']['quick'] else 'full'})",
        "",
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_mb']} MB, Python {m['python']}, "
        f"uvicorn {m['packages']['uvicorn']}, uvloop {m['packages']['uvloop']}, "
        f"aiohttp {m['packages']['aiohttp']}, orjson {m['packages']['orjson']}; "
        f"{m['wrk']}; commit {m['git_commit']}",
        f"wrk -t1 -c{CONNECTIONS}, {res['plan']['rounds']} interleaved round(s) of "
        f"{res['plan']['duration_s']} s; body bytes {res['plan']['body_bytes']}",
        "",
    ]
    if "throughput" in res:
        lines += [
            "### Throughput (32 connections; median of rounds)",
            "",
            "| scenario | target | req/s | (min–max) | p50 ms | p90 ms | p99 ms | errors "
            "| CPU% upstream / proxy / wrk | note |",
            "|---|---|---:|---|---:|---:|---:|---:|---|---|",
        ]
        for scenario, per in res["throughput"].items():
            for target in TARGETS:
                e = per.get(target)
                if e is None:
                    continue
                lat = e["latency_ms"]
                cpu = e["cpu_percent"]
                proxy = "-" if target == "direct" else f"{cpu[target]:.0f}"
                note = []
                if not e["valid"]:
                    note.append(f"**INVALID: errors {e['errors']}**")
                if e.get("near_upstream_ceiling"):
                    note.append("**within 10% of upstream ceiling**")
                if target == "crossway" and "crossway_over_floor" in per:
                    note.append(f"{per['crossway_over_floor']:.2f}× floor")
                if target != "direct":
                    note.append(f"{e['fraction_of_upstream_ceiling']:.2f}× upstream")
                errors = sum(e["errors"].values())
                lines.append(
                    f"| {scenario} | {target} | {e['rps_median']:.0f} | "
                    f"{e['rps_min']:.0f}–{e['rps_max']:.0f} | {lat['p50']:.2f} | "
                    f"{lat['p90']:.2f} | {lat['p99']:.2f} | {errors} | "
                    f"{cpu['upstream']:.0f} / {proxy} / {cpu['wrk']:.0f} | {'; '.join(note)} |")
        lines.append("")
    if "sequential" in res:
        s = res["sequential"]["short"]
        lines += [
            f"### One request at a time (short chat, {s['requests_each']} each, keep-alive)",
            "",
            "| target | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for target in TARGETS:
            t = s["targets"][target]["total_ms"]
            add = s["targets"][target].get("added_vs_direct", {}).get("total_ms")
            lines.append(f"| {target} | {t['p50']:.3f} | {t['p90']:.3f} | {t['p99']:.3f} | "
                         + (f"{add['p50']:+.3f} | {add['p99']:+.3f} |" if add else "– | – |"))
        st = res["sequential"]["stream20"]
        lines += [
            "",
            f"### One stream at a time (20 chunks, {st['requests_each']} each)",
            "",
            "| target | first byte p50 | first byte p99 | whole stream p50 | whole stream p99 "
            "| added first byte p50 / p99 | added whole p50 / p99 |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for target in TARGETS:
            t = st["targets"][target]
            fb, tot = t["first_byte_ms"], t["total_ms"]
            add = t.get("added_vs_direct")
            extra = (f"{add['first_byte_ms']['p50']:+.3f} / {add['first_byte_ms']['p99']:+.3f} | "
                     f"{add['total_ms']['p50']:+.3f} / {add['total_ms']['p99']:+.3f} |"
                     if add else "– | – |")
            lines.append(f"| {target} | {fb['p50']:.3f} | {fb['p99']:.3f} | {tot['p50']:.3f} | "
                         f"{tot['p99']:.3f} | {extra}")
        lines.append("")
    if "rss_mb" in res:
        lines += ["### Memory and start-up", "",
                  "| process | RSS idle MB | RSS peak MB (VmHWM) | RSS at end MB |",
                  "|---|---:|---:|---:|"]
        for name, r in res["rss_mb"].items():
            lines.append(f"| {name} | {r['idle']} | {r['hwm']} | {r['end']} |")
        su = res["startup_ms"]
        lines += ["", f"Spawn of `crossway serve` to first answered chat: median "
                      f"{su['crossway_median']:.0f} ms (runs {su['crossway_runs']}); "
                      f"floor proxy {su['floor']:.0f} ms.", ""]
    if "crossway_usage_log" in res:
        u = res["crossway_usage_log"]
        lines += [f"Crossway usage log: {u['events']} events (status {u['by_status']}) for "
                  f"{u['requests_answered_to_clients']} requests answered to clients "
                  f"(wrk does not count those cut at the end of a run); "
                  f"{u['queue_full_warnings']} queue-full warnings, {u['error_lines']} error "
                  "lines.", ""]
    if res["warnings"]:
        lines += ["### WARNINGS", ""] + [f"- **{w}**" for w in res["warnings"]] + [""]
    else:
        lines += ["No warnings: every figure valid (no errors, no non-2xx), upstream not "
                  "within 10% of its ceiling.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about one minute in all")
    parser.add_argument("--duration", type=int, help="seconds per wrk measurement "
                        "(default 5, quick 2)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--requests", type=int, help="sequential requests per target "
                        "(default 2000, quick 400)")
    parser.add_argument("--out", default=str(BENCH / "results" / "latest.json"))
    args = parser.parse_args()
    quick = args.quick
    requests = args.requests or (400 if quick else 2000)
    plan = Plan(quick=quick, duration=args.duration or (2 if quick else 5),
                rounds=args.rounds or (1 if quick else 3), warmup_s=1, requests=requests,
                stream_requests=max(50, requests // 4), seq_warmup=100 if quick else 200,
                startups=1 if quick else 3, out=Path(args.out))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
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
