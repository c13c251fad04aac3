"""Added latency, one request at a time: what a single user waits for, without queueing.

Each target gets one keep-alive connection (TCP_NODELAY); the targets take turns in batches
(order reversed every batch) so a slow moment of the machine hits all of them alike.
"""

from __future__ import annotations

import http.client
import math
import socket
import statistics
import time
from typing import Any

from common import CHAT_PATH, DIRECT, KEY, headers


def keepalive(port: int) -> http.client.HTTPConnection:
    """A connected keep-alive connection with Nagle off."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def timed(
    conn: http.client.HTTPConnection, body: bytes, stream: bool, head: dict[str, str]
) -> tuple[int, int, int | None]:
    """(status, total ns, first body byte ns for streams) of one request on a live connection."""
    t0 = time.perf_counter_ns()
    conn.request("POST", CHAT_PATH, body, head)
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


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(samples, 50), 4),
        "p90": round(pct(samples, 90), 4),
        "p99": round(pct(samples, 99), 4),
        "mean": round(statistics.fmean(samples), 4),
        "min": round(min(samples), 4),
    }


def sequential(
    ports: dict[str, int],
    body: bytes,
    n: int,
    warmup: int,
    batch: int,
    stream: bool,
    tokens: dict[str, str] | None = None,
) -> dict[str, Any]:
    """n requests per target after `warmup` each; percentiles per target and, for every
    target but the upstream, the same percentiles minus the upstream's (the added latency).
    tokens: target -> its Bearer token (the master key for the targets not in it)."""
    heads = {name: headers((tokens or {}).get(name, KEY)) for name in ports}
    conns = {name: keepalive(port) for name, port in ports.items()}
    total: dict[str, list[float]] = {name: [] for name in ports}
    first: dict[str, list[float]] = {name: [] for name in ports}
    errors = dict.fromkeys(ports, 0)
    names = list(ports)
    try:
        for name in names:
            for _ in range(warmup):
                timed(conns[name], body, stream, heads[name])
        rounds = math.ceil(n / batch)
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                conn = conns[name]
                for _ in range(min(batch, n - r * batch)):
                    status, ns, first_ns = timed(conn, body, stream, heads[name])
                    if status != 200:
                        errors[name] += 1
                    total[name].append(ns / 1e6)
                    if first_ns is not None:
                        first[name].append(first_ns / 1e6)
    finally:
        for conn in conns.values():
            conn.close()

    out: dict[str, Any] = {
        "requests_each": n,
        "warmup_each": warmup,
        "batch": batch,
        "errors": errors,
        "targets": {},
    }
    for name in names:
        entry: dict[str, Any] = {"total_ms": _summary(total[name])}
        if stream:
            entry["first_byte_ms"] = _summary(first[name])
        out["targets"][name] = entry
    for name in names:
        if name == DIRECT:
            continue
        added: dict[str, Any] = {}
        for metric in ("total_ms", "first_byte_ms") if stream else ("total_ms",):
            mine, base = out["targets"][name][metric], out["targets"][DIRECT][metric]
            added[metric] = {q: round(mine[q] - base[q], 4) for q in ("p50", "p90", "p99")}
        out["targets"][name]["added_vs_direct"] = added
    return out
