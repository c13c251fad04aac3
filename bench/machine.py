"""Where the figures were measured: CPUs, memory, versions, commit, and how busy it was.

Absolute figures mean little without this; it goes into the JSON and the table's header.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from common import ROOT
from procs import busy_percent, system_cpu

PACKAGES = ("uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "granian", "crossway")


def machine_info(wrk: str) -> dict[str, Any]:
    """CPU model and count, memory, kernel, Python and package versions, wrk, git commit."""
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
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "crossway"],
        capture_output=True,
        text=True,
    ).stdout.strip()
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


def busy_before_start(seconds: float = 1.0) -> float:
    """% of all CPUs busy over `seconds` before anything starts: other work on the machine."""
    before = system_cpu()
    time.sleep(seconds)
    return busy_percent(before, system_cpu())
