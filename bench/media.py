"""Embeddings throughput and the memory an audio upload costs.

    .venv/bin/python bench/media.py [--duration S] [--rounds R] [--upload-mb M] [--out F]

One Crossway in front of the simulated upstream:
  * embeddings, 16 inputs of ~200 tokens (~800 characters) each, wrk at 32 connections,
    against Crossway (passed through) and against the upstream directly (its ceiling),
    interleaved round by round;
  * a transcription upload of M MB (default 10) sent R times: the gateway's peak RSS growth
    while it carries one, measured from the kernel's high-water mark (VmHWM), reset before
    each upload (`/proc/<pid>/clear_refs` 5) and compared with VmRSS just before it.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from common import MODEL, headers, publish, say, side_bench_parser  # noqa: E402
from load import ensure_wrk, run_wrk, write_scripts  # noqa: E402
from machine import machine_info  # noqa: E402
from procs import (  # noqa: E402
    Children,
    crossway_config,
    post_once,
    proc_status,
    spawn_crossway,
    spawn_upstream,
    wait_first_answer,
)

EMBED_PATH = "/v1/embeddings"
TEXT = (
    "Crossway measures how many embedding requests it can pass along per second while "
    "every one of them carries sixteen paragraphs of about two hundred tokens each. "
)


def embeddings_body() -> bytes:
    inputs = [f"{i}: " + TEXT * 5 for i in range(16)]  # ~800 characters, ~200 tokens each
    return json.dumps({"model": MODEL, "input": inputs, "encoding_format": "float"}).encode()


def upload(port: int, megabytes: int) -> tuple[int, bytes]:
    boundary = "crossway-bench"
    head = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="model"\r\n\r\n{MODEL}\r\n'
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\n'
        "content-type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = megabytes * 1024 * 1024
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/audio/transcriptions")
        for name, value in headers().items():
            if name.lower() != "content-type":
                conn.putheader(name, value)
        conn.putheader("content-type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("content-length", str(len(head) + size + len(tail)))
        conn.endheaders()
        conn.send(head)
        block = b"\x00\x01" * 32768
        for _ in range(size // len(block)):
            conn.send(block)
        conn.send(block[: size % len(block)])
        conn.send(tail)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def main() -> None:
    parser = side_bench_parser(__doc__ or "")
    parser.add_argument("--upload-mb", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crossway-bench-media-"))
    kids = Children(workdir)
    results: dict[str, Any] = {"args": {**vars(args), "out": str(args.out)}, "rounds": []}
    try:
        wrk = ensure_wrk()
        results["machine"] = machine_info(wrk)
        upstream = spawn_upstream(kids)
        crossway = spawn_crossway(
            kids, crossway_config(workdir, upstream.port), "crossway", "uvicorn"
        )
        body = embeddings_body()
        wait_first_answer(
            crossway,
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        )
        for port in (crossway.port, upstream.port):
            status, raw, _ = post_once(port, body, path=EMBED_PATH)
            if status != 200 or len(json.loads(raw)["data"]) != 16:
                raise RuntimeError(f"embeddings on :{port} answered {status}: {raw[:200]!r}")
        luas = write_scripts(workdir, {"embed": body})
        pids = {"crossway": crossway.pid, "upstream": upstream.pid}
        for round_no in range(args.rounds):
            figures: dict[str, Any] = {}
            for target, port in (("direct", upstream.port), ("crossway", crossway.port)):
                run = run_wrk(wrk, luas["embed"], port, args.duration, pids, path=EMBED_PATH)
                if not run["valid"]:
                    raise RuntimeError(f"{target}: errors {run['errors']}")
                figures[target] = {"rps": run["rps"], "p50_ms": run["latency_ms"]["p50"]}
                say(f"round {round_no + 1} embeddings {target}: {run['rps']:.0f} req/s")
            before = proc_status(crossway.pid)["VmRSS"]
            reset_peak(crossway.pid)
            status, raw = upload(crossway.port, args.upload_mb)
            if status != 200:
                raise RuntimeError(f"upload answered {status}: {raw[:300]!r}")
            peak = proc_status(crossway.pid)["VmHWM"]
            growth = peak - before
            figures["upload"] = {"rss_before_kb": before, "peak_kb": peak, "growth_kb": growth,
                                 "answer": raw.decode()[:200]}  # fmt: skip
            say(f"round {round_no + 1} upload {args.upload_mb} MB: +{growth / 1024:.1f} MB RSS")
            results["rounds"].append(figures)
    finally:
        kids.stop_all()
    publish(results, report(results), args.out)


def report(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    lines = ["| embeddings, 16 x ~200 tokens | req/s (median) | per round |", "|---|---:|---|"]
    for target in ("direct", "crossway"):
        rps = [r[target]["rps"] for r in rounds]
        lines.append(
            f"| {target} | {statistics.median(rps):,.0f} | {', '.join(f'{x:.0f}' for x in rps)} |"
        )
    growth = [r["upload"]["growth_kb"] / 1024 for r in rounds]
    mb = results["args"]["upload_mb"]
    lines += ["", f"| {mb} MB transcription upload | peak RSS growth |", "|---|---:|"]
    lines += [f"| round {i + 1} | {g:.1f} MB |" for i, g in enumerate(growth)]
    lines.append(f"| worst | {max(growth):.1f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
