"""What translating between wire formats costs: the same Crossway, pass-through beside translated.

    .venv/bin/python bench/translated.py [--duration S] [--rounds R] [--events N] [--out F]
                                         [--client openai|anthropic|gemini]

One Crossway in front of the simulated upstream, with two providers on it: `sim` speaks
OpenAI's format (model `bench-model`), `sim-anthropic` Anthropic's (model `bench-claude`).
All three make the upstream answer with exactly 20 text chunks (an `x-simulate` provider header,
since a translated body drops the `simulate` field). wrk runs at 32 connections, interleaved
round by round, for each client format against each upstream format, plain and streaming:

    openai    → openai      pass-through   (the baseline of an OpenAI client)
    openai    → anthropic   translated     (target: ≥ 0.60 of the baseline)
    anthropic → anthropic   pass-through   (the baseline of an Anthropic client)
    anthropic → openai      translated

Then, in this process, the cost per stream event of the two stream paths with no network at
all: pass-through (cut at event ends, the usage chunk found) and translated (decoded into
canonical events, encoded for the caller), over a recorded-shape stream of N text events.
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

from common import KEY, MODEL, publish, say, side_bench_parser  # noqa: E402
from load import ensure_wrk, run_wrk, write_scripts  # noqa: E402
from machine import machine_info  # noqa: E402
from procs import Children, post_once, spawn_crossway, spawn_upstream, wait_first_answer  # noqa: E402

from crossway.dialects.common import StreamOptions  # noqa: E402
from crossway.dialects.registry import ANTHROPIC, GEMINI, OPENAI  # noqa: E402
from crossway.dialects.sse import EventCutter  # noqa: E402
from crossway.dialects.translate import StreamTranslator  # noqa: E402
from crossway.ir import Usage  # noqa: E402
from crossway.ir.stream import BlockStart, BlockStop, Finish, Start, TextDelta  # noqa: E402

CLAUDE = "bench-claude"
CHUNKS = '{"chunks": 20}'
MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in two sentences, please."}]
GEMINI_MODEL = "bench-gemini"
FORMATS = ("openai", "anthropic", "gemini")
MODEL_OF = {"openai": MODEL, "anthropic": CLAUDE, "gemini": GEMINI_MODEL}


def request(client: str, upstream: str, stream: bool) -> tuple[str, dict[str, Any]]:
    """The path and body of one scenario: this client format asking a model of that format."""
    model = MODEL_OF[upstream]
    if client == "openai":
        return "/v1/chat/completions", {"model": model, "messages": MESSAGES, "stream": stream}
    if client == "anthropic":
        body = {"model": model, "max_tokens": 256, "messages": MESSAGES, "stream": stream}
        return "/v1/messages", body
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    contents = [{"role": "user", "parts": [{"text": MESSAGES[0]["content"]}]}]
    body = {"contents": contents, "generationConfig": {"maxOutputTokens": 256}}
    return f"/v1beta/models/{model}:{action}", body


def config(workdir: Path, upstream_port: int) -> Path:
    base = f"http://127.0.0.1:{upstream_port}"
    path = workdir / "crossway.yaml"
    path.write_text(
        f"master_key: {KEY}\nlog_requests: true\n"
        f'database_url: "sqlite:///{workdir}/crossway.db"\n'
        "providers:\n"
        f'  sim: {{type: openai-compatible, base_url: "{base}/v1", models: [{MODEL}], '
        f"headers: {{x-simulate: '{CHUNKS}'}}}}\n"
        f'  sim-anthropic: {{type: anthropic, api_key: sk-sim, base_url: "{base}", '
        f"models: [{CLAUDE}], catalog_models: false, headers: {{x-simulate: '{CHUNKS}'}}}}\n"
        f'  sim-google: {{type: google, api_key: sk-sim, base_url: "{base}", '
        f"models: [{GEMINI_MODEL}], catalog_models: false, headers: {{x-simulate: '{CHUNKS}'}}}}\n"
    )
    return path


def scenario_name(client: str, upstream: str, stream: bool) -> str:
    return f"{client}->{upstream}{' stream' if stream else ''}"


def check(port: int, path: str, body: bytes, stream: bool) -> None:
    status, raw, _ = post_once(port, body, timeout=10, path=path)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {raw[:300]!r}")
    if stream and raw.count(b"data:") < 20:
        raise RuntimeError(f"{path} streamed too few events: {raw[:300]!r}")


def recorded_shape_stream(dialect: Any, events: int) -> bytes:
    """A text stream of `events` deltas as the dialect's upstream sends it (its own encoder
    writes it: the shapes the golden fixtures pin down)."""
    encoder = dialect.stream_encoder("m", StreamOptions())
    canonical: list[Any] = [Start("up-1", "m", Usage(9, 0)), BlockStart(0, "text")]
    canonical += [TextDelta(0, f" word{i}") for i in range(events)]
    canonical += [BlockStop(0), Finish("stop", Usage(9, events))]
    return b"".join(encoder.encode(e) for e in canonical)


def per_event_costs(events: int) -> dict[str, float]:
    """Microseconds per stream event, no network: pass-through and translated, each way."""
    streams = {d.name: recorded_shape_stream(d, events) for d in (OPENAI, ANTHROPIC, GEMINI)}

    def chop(raw: bytes) -> list[bytes]:  # as the network delivers it: 4 KB reads
        return [raw[i : i + 4096] for i in range(0, len(raw), 4096)]

    def passthrough(dialect: Any) -> None:
        cutter, usage = EventCutter(), dialect.passthrough_usage(StreamOptions(False))
        for piece in chop(streams[dialect.name]):
            usage.process(cutter.feed(piece))

    def translated(source: Any, target: Any) -> None:
        translator = StreamTranslator(source, target, "m", StreamOptions(False))
        cutter = EventCutter()
        for piece in chop(streams[source.name]):
            translator.feed(cutter.feed(piece))

    cases: dict[str, Any] = {}
    for source in (OPENAI, ANTHROPIC, GEMINI):
        cases[f"{source.name} pass-through"] = lambda s=source: passthrough(s)
    for source in (OPENAI, ANTHROPIC, GEMINI):
        for target in (OPENAI, ANTHROPIC, GEMINI):
            if source is not target:
                name = f"{source.name} upstream -> {target.name} client, translated"
                cases[name] = lambda s=source, t=target: translated(s, t)
    out = {}
    for name, run in cases.items():
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) * 1e6 / events)
        out[name] = round(statistics.median(samples), 3)
    return out


def main() -> None:
    parser = side_bench_parser(__doc__ or "")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument(
        "--client", choices=FORMATS, default=None, help="only this client format's paths"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crossway-bench-translated-"))
    kids = Children(workdir)
    results: dict[str, Any] = {
        "machine": {},
        "rounds": [],
        "args": vars(args) | {"out": str(args.out)},
    }
    try:
        wrk = ensure_wrk()
        results["machine"] = machine_info(wrk)
        upstream = spawn_upstream(kids)
        crossway = spawn_crossway(kids, config(workdir, upstream.port), "crossway", "uvicorn")
        plain = json.dumps(request("openai", "openai", False)[1]).encode()
        wait_first_answer(crossway, plain)
        say(f"crossway ready on :{crossway.port}")
        bodies: dict[str, bytes] = {}
        paths: dict[str, str] = {}
        for client in FORMATS if args.client is None else (args.client,):
            for upstream_format in FORMATS:
                for stream in (False, True):
                    name = scenario_name(client, upstream_format, stream)
                    path, body = request(client, upstream_format, stream)
                    bodies[name] = json.dumps(body).encode()
                    paths[name] = path
                    check(crossway.port, path, bodies[name], stream)
        luas = write_scripts(
            workdir, {n.replace(">", "").replace(" ", "_"): b for n, b in bodies.items()}
        )
        pids = {"crossway": crossway.pid, "upstream": upstream.pid}
        for round_no in range(args.rounds):
            figures = {}
            for name in bodies:
                lua = luas[name.replace(">", "").replace(" ", "_")]
                run = run_wrk(wrk, lua, crossway.port, args.duration, pids, path=paths[name])
                if not run["valid"]:
                    raise RuntimeError(f"{name}: errors {run['errors']}")
                figures[name] = {
                    "rps": run["rps"],
                    "p50_ms": run["latency_ms"]["p50"],
                    "cpu": run["cpu_percent"],
                }
                say(f"round {round_no + 1} {name}: {run['rps']:.0f} req/s")
            results["rounds"].append(figures)
        results["per_event_us"] = per_event_costs(args.events)
    finally:
        kids.stop_all()
    publish(results, report(results), args.out)


def report(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    names = list(rounds[0])
    median = {n: statistics.median(r[n]["rps"] for r in rounds) for n in names}
    lines = [
        "| path | req/s (median) | per round | vs. pass-through of that client |",
        "|---|---:|---|---:|",
    ]
    for name in names:
        client, rest = name.split("->")
        _, _, stream = rest.partition(" ")
        base = f"{client}->{client}{' stream' if stream else ''}"
        ratio = median[name] / median[base]
        per_round = ", ".join(f"{r[name]['rps']:.0f}" for r in rounds)
        lines.append(f"| {name} | {median[name]:,.0f} | {per_round} | {ratio:.2f} |")
    lines += ["", "| stream path, in-process | µs per event |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in results["per_event_us"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
