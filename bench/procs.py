"""The servers under test as child processes: spawn, wait for the first answer, stop, sample.

Every child gets its own process group and PR_SET_PDEATHSIG, so none outlives the benchmark,
not even when the benchmark itself is killed. CPU and memory come from /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import BENCH, CHAT_PATH, KEY, MODEL, PYTHON, headers

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # children get SIGKILL if this script dies, even by SIGKILL
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env() -> dict[str, str]:
    """This environment without CROSSWAY_* (the config file alone decides), unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    """One server: its name (the target name in the results), port, process and log."""

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
    """Every process this run started, so that all of them are stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def spawn(
        self, name: str, port: int, argv: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        log_path = self.workdir / f"{name}-{port}.log"
        log = log_path.open("wb")
        started = time.perf_counter()
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**child_env(), **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        proc = Proc(name, port, popen, log_path, started)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


# --- the three kinds of server ---------------------------------------------------------------


def spawn_upstream(kids: Children) -> Proc:
    """The simulated upstream, `python -m crossway.testing`, zero delay."""
    port = free_port()
    return kids.spawn("upstream", port, [PYTHON, "-m", "crossway.testing", "--port", str(port)])


def spawn_floor(kids: Children, upstream_port: int) -> Proc:
    """bench/floor_proxy.py in front of the upstream."""
    port = free_port()
    argv = [
        PYTHON,
        str(BENCH / "floor_proxy.py"),
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]
    return kids.spawn("floor", port, argv)


def crossway_config(
    workdir: Path, upstream_port: int, name: str = "crossway", extra: dict[str, str] | None = None
) -> Path:
    """A settings file per Crossway process (its own SQLite file: no shared locks); extra
    settings (YAML values as text) are added or replace the defaults."""
    settings = {
        "master_key": KEY,
        "log_requests": "true",
        "database_url": f'"sqlite:///{workdir}/{name}.db"',
        **(extra or {}),
    }
    path = workdir / f"{name}.yaml"
    path.write_text(
        "".join(f"{key}: {value}\n" for key, value in settings.items()) + "providers:\n"
        f'  sim: {{type: openai-compatible, base_url: "http://127.0.0.1:{upstream_port}/v1", '
        f"models: [{MODEL}]}}\n"
    )
    return path


def spawn_crossway(
    kids: Children, config: Path, name: str, server: str, code: Path | None = None
) -> Proc:
    """`crossway serve --server SERVER` (builtin, uvicorn or granian) under the given target name;
    with `code`, the `crossway` package of that source tree (an earlier revision) instead."""
    port = free_port()
    exe = Path(PYTHON).parent / "crossway"
    argv = [str(exe)] if exe.exists() and code is None else [PYTHON, "-m", "crossway"]
    serve = ["serve", "--config", str(config), "--port", str(port), "--server", server]
    env = {"PYTHONPATH": str(code)} if code is not None else None
    return kids.spawn(name, port, [*argv, *serve], env)


# --- talking to a server ---------------------------------------------------------------------


def post_once(
    port: int, body: bytes, timeout: float = 5.0, token: str = KEY, path: str = CHAT_PATH
) -> tuple[int, bytes, dict[str, str]]:
    """One POST (a chat unless told) on a fresh connection: (status, body, headers with
    lower-case names)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, headers(token))
        resp = conn.getresponse()
        got = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, resp.read(), got
    finally:
        conn.close()


def wait_first_answer(proc: Proc, body: bytes, deadline_s: float = 60.0) -> float:
    """Poll with a real chat request every 10 ms; seconds from spawn to the first 200."""
    limit = proc.spawned_at + deadline_s
    while True:
        tick = time.perf_counter()
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = post_once(proc.port, body, timeout=5.0)
            if status == 200:
                return time.perf_counter() - proc.spawned_at
        if tick > limit:
            raise RuntimeError(
                f"{proc.name} did not answer within {deadline_s} s:\n{proc.log_tail()}"
            )
        time.sleep(max(0.0, 0.010 - (time.perf_counter() - tick)))


# --- CPU and memory ----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (empty once it is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # kB
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, all its threads, user + system."""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return 0.0


def cpu_of_named(name: str) -> float | None:
    """CPU seconds used so far by every process named `name` here (for `postgres`: the
    backends, the WAL writer, ...); None if none is visible."""
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    return sum(cpu_seconds(pid) for pid in pids) if pids else None


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU so far."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                total += int((task / "schedstat").read_text().split()[1])  # ns
    return total / 1e9


def system_cpu() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def busy_percent(before: list[int], after: list[int]) -> float:
    """% of all CPUs neither idle nor in iowait between two system_cpu() readings."""
    ticks = [b - a for a, b in zip(before, after, strict=True)]
    return round(100 * (sum(ticks) - ticks[3] - ticks[4]) / (sum(ticks) or 1), 1)


def children_cpu() -> float:
    """CPU time of this script's reaped children (wrk), user + system."""
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
