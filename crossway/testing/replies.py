"""Deterministic answers: the same request always gets the same reply, tokens and ids."""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import struct
from typing import Any

SIMULATED = "[simulated]"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _parts(content: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("image_url", "file", "input_audio"):
                counts[part["type"]] = counts.get(part["type"], 0) + 1
    return counts


def prompt_tokens(messages: list[Any]) -> int:
    """About four characters a token, plus a little per message and per attachment."""
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        total += 4 + math.ceil(len(_text_of(content)) / 4)
        total += 85 * sum(_parts(content).values())
    return max(total, 1)


def reply_words(model: str, messages: list[Any], chunks: int | None) -> list[str]:
    """The reply, one word (one stream chunk) each."""
    last_user = next(
        (
            m
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") in ("user", "tool")
        ),
        {},
    )
    said = " ".join(_text_of(last_user.get("content")).split())[:80]
    parts = _parts(last_user.get("content"))
    received = ", ".join(f"{n} {kind}" for kind, n in sorted(parts.items()))
    text = f"{SIMULATED} Hello from {model}."
    if last_user.get("role") == "tool":
        text += f" The tool answered: {said}"
    elif said:
        text += f" You said: {said}"
    if received:
        text += f" (received: {received})"
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if chunks is None:
        return pieces
    if chunks <= len(pieces):  # merge to exactly `chunks` pieces
        size = math.ceil(len(pieces) / max(chunks, 1))
        merged = ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
        while len(merged) < chunks:
            merged.append(" .")
        return merged[:chunks]
    return pieces + [" ."] * (chunks - len(pieces))


def _example(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {name: _example(props[name]) for name in required if name in props}
    return {"string": "example", "integer": 1, "number": 1.5, "boolean": True, "array": []}.get(
        kind or ""
    )


def tool_calls(request: dict[str, Any], seed: str) -> list[dict[str, Any]]:
    """Call a tool when tools are offered and the last turn is the user's."""
    tools = [
        t
        for t in request.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = request.get("tool_choice")
    messages = request.get("messages") or []
    if (
        not tools
        or choice == "none"
        or not messages
        or not isinstance(messages[-1], dict)
        or messages[-1].get("role") != "user"
    ):
        return []
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        tools = [t for t in tools if t["function"].get("name") == choice["function"].get("name")]
    elif "[parallel]" not in _text_of(messages[-1].get("content")):
        tools = tools[:1]
    calls = []
    for i, tool in enumerate(tools):
        fn = tool["function"]
        digest = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:24]
        calls.append(
            {
                "id": f"call_{digest}",
                "type": "function",
                "function": {
                    "name": fn.get("name", "tool"),
                    "arguments": _dumps(_example(fn.get("parameters")) or {}),
                },
            }
        )
    return calls


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=4096)
def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text's hash (cached: a benchmark repeats its texts, and
    the upstream must not be what is measured). Callers must not change the list."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in block)
        counter += 1
    vec = out[:dimensions]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def base64_floats(vec: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def request_id(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:24]
