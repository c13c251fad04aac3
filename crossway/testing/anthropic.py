"""Anthropic's Messages API for the simulated upstream: `/messages` and `/messages/count_tokens`.

`SimulatedUpstream` hands over every POST whose path ends in one of those. Requests are checked
the way the real API checks them (a 400 `invalid_request_error` whose message names the field),
answers are deterministic from the request body, errors have Anthropic's shape with a
`request-id` header, and streams follow the real event grammar: `message_start`, then per block
`content_block_start`, deltas, `content_block_stop` (one `ping` after the first start), then
`message_delta` and `message_stop`. Faults work as for OpenAI (see `crossway.testing.faults`).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from crossway.testing import replies
from crossway.testing.faults import Faults
from crossway.testing.server import Reply, Request

# The upstream's stream player: (events, faults, the in-stream error event) -> body chunks.
Play = Callable[[list[bytes], Faults, bytes], AsyncIterator[bytes]]

JSON = {"content-type": "application/json"}
_OVERLOADED = {"type": "overloaded_error", "message": "simulated in-stream failure"}
STREAM_ERROR = b"event: error\ndata: " + orjson.dumps({"type": "error", "error": _OVERLOADED})
STREAM_ERROR += b"\n\n"

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error"}
_ERROR_TYPES |= {403: "permission_error", 404: "not_found_error", 413: "request_too_large"}
_ERROR_TYPES |= {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
# Top-level fields of the count and create requests in Anthropic's spec, plus our fault hook.
_COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking"}
_COUNT_FIELDS |= {"output_config", "cache_control", "simulate"}
_CREATE_FIELDS = _COUNT_FIELDS | {"max_tokens", "stream", "stop_sequences", "temperature", "top_p"}
_CREATE_FIELDS |= {"top_k", "metadata", "service_tier", "container", "inference_geo"}
_MEDIA = ("image", "document")
_COUNTED = ("text", "tool_result", "tool_use", "thinking")  # blocks whose text costs tokens
_UNANSWERED = (
    "messages.{n}: `tool_use` ids were found without `tool_result` blocks immediately after: "
    "{ids}. Each `tool_use` block must have a corresponding `tool_result` block in the next "
    "message."
)


class Invalid(Exception):
    """A request the real API refuses with 400 invalid_request_error; the text is the message."""


def handles(path: str) -> bool:
    return path.endswith(("/messages", "/messages/count_tokens"))


def request_id(body: bytes) -> str:
    return "req_sim" + replies.request_id(body)


def error(status: int, message: str, rid: str, headers: dict[str, str] | None = None) -> Reply:
    """An error answer in Anthropic's shape; the type follows the status as the real API's."""
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    return Reply(status, {**JSON, "request-id": rid, **(headers or {})}, orjson.dumps(body))


def answer(request: Request, body: dict[str, Any], faults: Faults, play: Play) -> Reply:
    """Answer a Messages (or count_tokens) request; hang and latency faults are already done."""
    rid = request_id(request.body)
    if not request.headers.get("anthropic-version"):
        return error(400, "anthropic-version: header is required", rid)
    if faults.status:
        extra = {} if faults.retry_after is None else {"retry-after": str(faults.retry_after)}
        text = faults.message or f"simulated {faults.status} error"
        return error(faults.status, text, rid, extra)
    headers = {**JSON, "request-id": rid}
    if faults.malformed:
        return Reply(200, headers, b"{this is not json")
    counting = request.path.endswith("/count_tokens")
    try:
        _validate(body, counting)
    except Invalid as exc:
        return error(400, str(exc), rid)
    uncached, cached = input_tokens(body)
    if counting:
        return Reply(200, headers, orjson.dumps({"input_tokens": uncached + cached}))
    reply = _reply(body, rid, faults)
    usage: dict[str, Any] = {"input_tokens": uncached, "cache_creation_input_tokens": 0}
    usage |= {"cache_read_input_tokens": cached, "output_tokens": reply.output_tokens}
    usage |= {"service_tier": "standard"}
    message_id = "msg_sim" + rid.removeprefix("req_sim")
    head = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"]}
    if body.get("stream") is True:
        events = _stream_events(head, usage, reply)
        headers |= {"content-type": "text/event-stream", "cache-control": "no-cache"}
        return Reply(200, headers, stream=play(events, faults, STREAM_ERROR))
    ending = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    message = {**head, "content": reply.content, **ending, "usage": usage}
    return Reply(200, headers, orjson.dumps(message))


# --- reading requests -------------------------------------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _text(content: Any, kinds: tuple[str, ...] = ("text",)) -> str:
    """The text of the blocks of these kinds (a tool result by its own text blocks)."""
    out = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind not in kinds:
            continue
        if kind == "tool_result":
            out.append(_text(block.get("content")))
        elif kind == "tool_use":
            out.append(orjson.dumps(block.get("input")).decode())
        elif isinstance(block.get(kind), str):  # text and thinking hold it by that name
            out.append(block[kind])
    return " ".join(out)


def input_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(uncached, cache-read) input tokens, estimated like `replies.prompt_tokens`.

    About four characters a token plus 4 per message (the system prompt counts as one) and 85
    per image or document, so a translated OpenAI request gets the same count. Blocks that carry
    `cache_control` are reported as read from the cache.
    """
    units = [_blocks(body["system"])] if body.get("system") else []
    units += [_blocks(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
    total = cached = 0
    for blocks in units:
        hit = [b for b in blocks if b.get("cache_control")]
        total += 4 + math.ceil(len(_text(blocks, _COUNTED)) / 4)
        cached += math.ceil(len(_text(hit, _COUNTED)) / 4)
        total += 85 * sum(b.get("type") in _MEDIA for b in blocks)
        cached += 85 * sum(b.get("type") in _MEDIA for b in hit)
    total = max(total, 1)
    return total - cached, cached


# --- validation ---------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tag_error(field: str, tag: Any, tags: str) -> Invalid:
    return Invalid(
        f"{field}: Input tag '{tag}' found using 'type' does not match any of the expected "
        f"tags: {tags}"
    )


def _validate(body: dict[str, Any], counting: bool) -> None:
    for name in body:
        if name not in (_COUNT_FIELDS if counting else _CREATE_FIELDS):
            raise Invalid(f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages") if counting else ("model", "max_tokens", "messages"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise Invalid("model: String should have at least 1 character")
    if not counting and not _is_int(body["max_tokens"]):
        raise Invalid("max_tokens: Input should be a valid integer")
    if not counting and body["max_tokens"] < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    _check_messages(body["messages"])
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise Invalid("system: Input should be a valid string or list")
    for m, block in enumerate(system if isinstance(system, list) else []):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Invalid(f"system.{m}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise Invalid(f"system.{m}: text content blocks must be non-empty")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise Invalid(f"{name}: Input should be a valid number")
        if value is not None and not 0 <= value <= 1:
            bound = "greater than or equal to 0" if value < 0 else "less than or equal to 1"
            raise Invalid(f"{name}: Input should be {bound}")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in stops or []):
        raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    _check_tools(body)
    _check_thinking(body, counting)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise Invalid("messages: Input should be a valid list")
    if not messages:
        raise Invalid("messages: at least one message is required")
    for n, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(f"messages.{n}: Input should be a valid dictionary")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{n}.role: Input should be 'user' or 'assistant'")
        if not isinstance(content, str | list):
            raise Invalid(f"messages.{n}.content: Input should be a valid string or list")
        final_assistant = n == len(messages) - 1 and role == "assistant"
        if not content and not final_assistant:
            raise Invalid(
                f"messages.{n}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        for m, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise Invalid(f"messages.{n}.content.{m}.type: Field required")
            text = block.get("text")
            if block["type"] == "text" and (not isinstance(text, str) or not text):
                raise Invalid(f"messages.{n}.content.{m}: text content blocks must be non-empty")
        last_text = _text(_blocks(content)[-1:])
        if final_assistant and last_text != last_text.rstrip():
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")
    _check_tool_pairs(messages)


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Each tool_use is answered in the very next message, each tool_result answers one."""
    asked: list[str] = []  # tool_use ids of the message before
    for n, message in enumerate(messages):
        blocks = _blocks(message.get("content"))
        answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if missing := [i for i in asked if i not in answered]:
            raise Invalid(_UNANSWERED.format(n=n - 1, ids=", ".join(missing)))
        for m, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked:
                raise Invalid(
                    f"messages.{n}.content.{m}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        uses = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
        asked = uses if message.get("role") == "assistant" else []
    if asked:
        raise Invalid(_UNANSWERED.format(n=len(messages) - 1, ids=", ".join(asked)))


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise Invalid(f"tools.{i}.name: Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise Invalid(f"tools.{i}.custom.input_schema: Field required")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if choice is not None and kind not in ("auto", "any", "tool", "none"):
        raise _tag_error("tool_choice", kind, "'auto', 'any', 'tool', 'none'")
    if kind == "tool" and isinstance(choice, dict) and choice.get("name") not in names:
        raise Invalid(f"tool_choice.name: tool '{choice.get('name')}' is not in `tools`")


def _check_thinking(body: dict[str, Any], counting: bool) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if not isinstance(thinking, dict) or kind not in ("enabled", "disabled", "adaptive"):
        raise _tag_error("thinking", kind, "'enabled', 'disabled', 'adaptive'")
    budget: Any = thinking.get("budget_tokens")
    if kind == "enabled" and not _is_int(budget):
        raise Invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if kind == "enabled" and int(budget) < 1024:
        raise Invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if kind == "enabled" and not counting and int(budget) >= body["max_tokens"]:
        raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    choice = body.get("tool_choice")
    if kind != "disabled" and isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")


# --- answering ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    content: list[dict[str, Any]]
    pieces: list[str]  # the text block's deltas
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def _pieces(text: str) -> list[str]:
    return [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]


def _chunked(pieces: list[str], chunks: int | None) -> list[str]:
    """Exactly `chunks` pieces, merged or padded by the rule of `replies.reply_words`."""
    if chunks is None:
        return pieces
    if chunks <= len(pieces):
        size = math.ceil(len(pieces) / max(chunks, 1))
        merged = ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
        return (merged + [" ."] * chunks)[:chunks]
    return pieces + [" ."] * (chunks - len(pieces))


def _reply_text(model: str, last_user: dict[str, Any]) -> str:
    """Worded like `replies.reply_words`, with Anthropic's block kinds."""
    blocks = _blocks(last_user.get("content"))
    tool_turn = any(b.get("type") == "tool_result" for b in blocks)
    said = " ".join(_text(blocks, ("tool_result",) if tool_turn else ("text",)).split())[:80]
    counts: dict[str, int] = {}
    for kind in (b.get("type") for b in blocks):
        if kind in _MEDIA:
            counts[kind] = counts.get(kind, 0) + 1
    text = f"{replies.SIMULATED} Hello from {model}."
    if tool_turn:
        text += f" The tool answered: {said}"
    elif said:
        text += f" You said: {said}"
    if counts:
        text += f" (received: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))})"
    return text


def _tool_uses(body: dict[str, Any], last_user: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    """Call a tool when tools are offered and the last user turn is not a tool's answer."""
    tools = [t for t in body.get("tools") or [] if t.get("type") in (None, "custom")]
    choice: dict[str, Any] = body.get("tool_choice") or {}
    blocks = _blocks(last_user.get("content"))
    if not tools or choice.get("type") == "none":
        return []
    if any(b.get("type") == "tool_result" for b in blocks):
        return []
    if choice.get("type") == "tool":
        tools = [t for t in tools if t["name"] == choice.get("name")]
    elif "[parallel]" not in _text(blocks) or choice.get("disable_parallel_tool_use") is True:
        tools = tools[:1]
    uses = []
    for i, tool in enumerate(tools):
        digest = hashlib.sha256(f"{rid}:{i}".encode()).hexdigest()[:24]
        example = replies._example(tool.get("input_schema"))
        args = example if isinstance(example, dict) else {}
        uses.append(
            {"type": "tool_use", "id": f"toolu_{digest}", "name": tool["name"], "input": args}
        )
    return uses


def _reply(body: dict[str, Any], rid: str, faults: Faults) -> _Reply:
    last_user: dict[str, Any] = next(
        (m for m in reversed(body["messages"]) if m["role"] == "user"), {}
    )
    content: list[dict[str, Any]] = []
    output = 0
    thinking: dict[str, Any] = body.get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive"):
        said = " ".join(_text(last_user.get("content")).split())[:40]
        thought = f"{replies.SIMULATED} Thinking it over: {said}".rstrip()
        if thinking.get("display") == "omitted":
            thought = ""  # the real API still sends the block, with its signature
        digest = hashlib.sha256(f"{rid}:thinking:{thought}".encode()).digest()
        signature = base64.b64encode(b"sim" + digest + digest[::-1]).decode()
        content.append({"type": "thinking", "thinking": thought, "signature": signature})
        output += len(thought) // 4 + 8
    if uses := _tool_uses(body, last_user, rid):
        output += sum(len(orjson.dumps(u["input"])) // 4 + 5 for u in uses)
        return _Reply([*content, *uses], [], "tool_use", None, output)
    text = _reply_text(body["model"], last_user)
    reason, matched = "end_turn", None
    if found := [(text.find(s), s) for s in body.get("stop_sequences") or [] if s in text]:
        at, matched = min(found)  # the earliest match stops generation
        text, reason = text[:at], "stop_sequence"
    pieces = _pieces(text) if text else []
    if body["max_tokens"] < len(pieces):
        pieces, reason, matched = pieces[: body["max_tokens"]], "max_tokens", None
    if pieces:
        pieces = _chunked(pieces, faults.chunks)
        content.append({"type": "text", "text": "".join(pieces)})
    return _Reply(content, pieces, reason, matched, output + max(len(pieces), 1))


def _frame(data: dict[str, Any]) -> bytes:
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _deltas(block: dict[str, Any], pieces: list[str]) -> list[dict[str, Any]]:
    if block["type"] == "text":
        return [{"type": "text_delta", "text": p} for p in pieces]
    if block["type"] == "thinking":
        thought = _pieces(block["thinking"]) if block["thinking"] else []
        signature = {"type": "signature_delta", "signature": block["signature"]}
        return [*({"type": "thinking_delta", "thinking": p} for p in thought), signature]
    args = orjson.dumps(block["input"]).decode()
    fragments = ["", *(args[i : i + 8] for i in range(0, len(args), 8))]  # first one is empty
    return [{"type": "input_json_delta", "partial_json": f} for f in fragments]


def _stream_events(head: dict[str, Any], usage: dict[str, Any], reply: _Reply) -> list[bytes]:
    opening: dict[str, Any] = {"content": [], "stop_reason": None, "stop_sequence": None}
    message = {**head, **opening, "usage": {**usage, "output_tokens": 1}}
    events = [_frame({"type": "message_start", "message": message})]
    empty = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}}
    for index, block in enumerate(reply.content):
        opened = {**block, **empty.get(block["type"], {"input": {}})}
        events.append(
            _frame({"type": "content_block_start", "index": index, "content_block": opened})
        )
        if index == 0:
            events.append(_frame({"type": "ping"}))
        for delta in _deltas(block, reply.pieces):
            events.append(_frame({"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(_frame({"type": "content_block_stop", "index": index}))
    if not reply.content:
        events.append(_frame({"type": "ping"}))
    ending = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    usage_delta = {"output_tokens": reply.output_tokens}
    events.append(_frame({"type": "message_delta", "delta": ending, "usage": usage_delta}))
    events.append(_frame({"type": "message_stop"}))
    return events
