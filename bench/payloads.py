"""The request bodies of the three scenarios and the check of each answer.

Checked once per target before any load, so a figure never measures wrong answers fast.
"""

from __future__ import annotations

import json

from common import MODEL


def _short_messages() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a concise assistant."},
        {
            "role": "user",
            "content": "Summarise the plot of Hamlet in two sentences, please. "
            "Mention the ghost, the play within the play and the ending.",
        },
    ]


def bodies() -> dict[str, bytes]:
    """Scenario -> JSON body: `short` (~300 B), `stream20` (20 chunks), `long` (~47 KB)."""
    short = {
        "model": MODEL,
        "messages": _short_messages(),
        "max_tokens": 128,
        "temperature": 0.2,
        "user": "bench-user-0001",
    }
    stream = {**short, "stream": True, "simulate": {"chunks": 20}}
    paragraph = (
        "The quick brown fox jumps over the lazy dog while the benchmark measures "
        "how many bytes a gateway can move per second without getting in the way. "
    )
    messages: list[dict[str, str]] = [{"role": "system", "content": "You review documents."}]
    for i in range(10):  # ten turns of ~5 KB: ~50 KB in all
        text = f"Part {i}: " + paragraph * 32
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    messages.append({"role": "user", "content": "Which part mentions the fox first?"})
    long = {"model": MODEL, "messages": messages, "max_tokens": 128}
    return {
        name: json.dumps(body, separators=(",", ":")).encode()
        for name, body in (("short", short), ("stream20", stream), ("long", long))
    }


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
