"""Anthropic Messages requests ⇄ the canonical `ChatRequest`.

Encoding enforces what the Messages API insists on: `max_tokens` always set (DEFAULT_MAX_TOKENS
when the caller gave none), temperature at most 1, no empty text blocks, tool results first
in the user turn after the calls, and thinking only where its signed blocks can be replayed.
"""

from __future__ import annotations

import re
from typing import Any

from crossway.dialects.common import (
    expect,
    invalid,
    optional_int,
    optional_number,
    optional_str,
    safe_tool_id,
    untranslatable,
)
from crossway.dialects.openai.requests import EFFORT_BUDGET
from crossway.ir.chat import (
    Audio,
    ChatRequest,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    arguments_object,
    arguments_text,
)

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI and Gemini callers often omit it
MIN_THINKING_BUDGET = 1024
_KNOWN = {
    "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "tools", "tool_choice", "thinking", "output_config", "metadata",
}  # fmt: skip
_LOOKS_PERSONAL = re.compile(r"@|^\+?[\d\s().-]{7,}$")  # Anthropic refuses e-mails and phones


def decode_request(body: dict[str, Any]) -> ChatRequest:
    raw_messages = expect(body.get("messages"), list, "messages", "an array of messages")
    messages = [_decode_message(m, i) for i, m in enumerate(raw_messages)]
    req = ChatRequest(messages=messages, system=_decode_system(body.get("system")))
    req.dialect = "anthropic"
    req.model = optional_str(body, "model") or ""
    req.max_tokens = optional_int(body, "max_tokens")
    req.temperature = optional_number(body, "temperature")
    req.top_p = optional_number(body, "top_p")
    req.top_k = optional_int(body, "top_k")
    stops = body.get("stop_sequences") or []
    req.stop = [expect(s, str, "stop_sequences", "an array of strings") for s in stops]
    req.stream = bool(body.get("stream"))
    req.tools = [_decode_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    _decode_tool_choice(body.get("tool_choice"), req)
    _decode_thinking(body.get("thinking"), body.get("output_config"), req)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        req.user = metadata["user_id"]
    req.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return req


def _decode_system(system: Any) -> list[Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Text(system)] if system else []
    blocks = expect(system, list, "system", "a string or an array of text blocks")
    out = []
    for i, block in enumerate(blocks):
        block = expect(block, dict, f"system[{i}]", "a text block")
        out.append(Text(str(block.get("text") or ""), block.get("cache_control")))
    return out


def _decode_message(raw: Any, i: int) -> Message:
    where = f"messages[{i}]"
    message = expect(raw, dict, where, "an object")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise invalid(f"{where}.role", "must be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return Message(role, [Text(content)] if content else [])
    blocks = expect(content, list, f"{where}.content", "a string or an array of blocks")
    return Message(role, [_decode_block(b, f"{where}.content[{j}]") for j, b in enumerate(blocks)])


def _decode_block(raw: Any, where: str) -> Part:
    block = expect(raw, dict, where, "an object")
    kind = block.get("type")
    cache = block.get("cache_control")
    if kind == "text":
        return Text(expect(block.get("text"), str, f"{where}.text", "a string"), cache)
    if kind in ("image", "document"):
        return _decode_media(block, kind, where)
    if kind == "tool_use":
        return ToolCall(
            id=expect(block.get("id"), str, f"{where}.id", "a string"),
            name=expect(block.get("name"), str, f"{where}.name", "a string"),
            arguments=arguments_text(block.get("input")),
        )
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str) or content is None:
            parts: list[Text | Image | Document] = [Text(content)] if content else []
        else:
            parts = []
            for j, item in enumerate(expect(content, list, f"{where}.content", "an array")):
                part = _decode_block(item, f"{where}.content[{j}]")
                if not isinstance(part, Text | Image | Document):
                    raise invalid(f"{where}.content[{j}]", "must be text, image or document")
                parts.append(part)
        return ToolResult(
            call_id=expect(block.get("tool_use_id"), str, f"{where}.tool_use_id", "a string"),
            content=parts,
            is_error=block.get("is_error") is True,
            cache_control=cache,
        )
    if kind == "thinking":
        return Reasoning(str(block.get("thinking") or ""), block.get("signature"))
    if kind == "redacted_thinking":
        return Reasoning(redacted=str(block.get("data") or ""))
    raise invalid(f"{where}.type", f"content block type {kind!r} cannot be translated")


def _decode_media(block: dict[str, Any], kind: str, where: str) -> Part:
    source = expect(block.get("source"), dict, f"{where}.source", "an object")
    source_type = source.get("type")
    cache = block.get("cache_control")
    if source_type == "url":
        url = expect(source.get("url"), str, f"{where}.source.url", "a string")
        if kind == "image":
            return Image(url=url, cache_control=cache)
        return Document(url=url, title=block.get("title"), cache_control=cache)
    if source_type == "base64":
        data = expect(source.get("data"), str, f"{where}.source.data", "a string")
        media = str(source.get("media_type") or "")
        if kind == "image":
            return Image(data=data, media_type=media or "image/png", cache_control=cache)
        return Document(media or "application/pdf", data=data, title=block.get("title"),
                        cache_control=cache)  # fmt: skip
    if source_type == "text" and kind == "document":
        text = expect(source.get("data"), str, f"{where}.source.data", "a string")
        return Document("text/plain", text=text, title=block.get("title"), cache_control=cache)
    raise invalid(
        f"{where}.source.type",
        f"{source_type!r} sources (such as provider file ids) cannot be translated",
    )


def _decode_tool(raw: Any, i: int) -> Tool:
    tool = expect(raw, dict, f"tools[{i}]", "an object")
    if tool.get("type") not in (None, "custom"):
        raise invalid(f"tools[{i}].type", f"server tool {tool.get('type')!r} cannot be translated")
    schema = tool.get("input_schema")
    return Tool(
        name=expect(tool.get("name"), str, f"tools[{i}].name", "a string"),
        description=tool.get("description") if isinstance(tool.get("description"), str) else None,
        parameters=schema if isinstance(schema, dict) else None,
        strict=tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
        cache_control=tool.get("cache_control"),
    )


def _decode_tool_choice(raw: Any, req: ChatRequest) -> None:
    if raw is None:
        return
    choice = expect(raw, dict, "tool_choice", "an object")
    mode = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}.get(
        str(choice.get("type"))
    )
    if mode is None:
        raise invalid("tool_choice.type", "must be 'auto', 'any', 'tool' or 'none'")
    req.tool_choice = ToolChoice(mode=mode, name=choice.get("name"))  # type: ignore[arg-type]
    if choice.get("disable_parallel_tool_use") is True:
        req.parallel_tool_calls = False


def _decode_thinking(raw: Any, output_config: Any, req: ChatRequest) -> None:
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "enabled":
            req.thinking = Thinking(budget_tokens=optional_int(raw, "budget_tokens", "thinking"))
        elif kind == "adaptive":
            req.thinking = Thinking(effort=effort if isinstance(effort, str) else "medium")
        elif kind == "disabled":
            req.thinking = Thinking(enabled=False)
    if isinstance(output_config, dict):
        fmt = output_config.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            req.response_format = ResponseFormat(
                "json_schema", schema=schema if isinstance(schema, dict) else None
            )


# --- encoding ----------------------------------------------------------------------------


def encode_request(req: ChatRequest, model: str) -> dict[str, Any]:
    if req.n != 1:
        raise untranslatable("n", f"n={req.n} (several choices)", "Anthropic")
    messages = _encode_messages(req)
    body: dict[str, Any] = {"model": model, "messages": messages}
    system = [_text_block(t) for t in req.system if t.text]
    if req.response_format is not None and req.response_format.kind == "json_object":
        system.append({"type": "text", "text": "Answer with a single JSON object only."})
    if system:
        body["system"] = system
    thinking = _thinking(req)
    max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
    if thinking is not None and thinking["budget_tokens"] >= max_tokens:
        max_tokens = thinking["budget_tokens"] + DEFAULT_MAX_TOKENS
    body["max_tokens"] = max_tokens
    # with thinking on, Anthropic accepts no sampling settings but its defaults
    if req.temperature is not None and thinking is None:
        body["temperature"] = min(max(req.temperature, 0.0), 1.0)
    if req.top_p is not None and thinking is None:
        body["top_p"] = req.top_p
    if req.top_k is not None and thinking is None:
        body["top_k"] = req.top_k
    stops = [s for s in req.stop if s.strip()]
    if stops:
        body["stop_sequences"] = stops
    tools = req.tools
    choice = req.tool_choice
    if thinking is not None and choice is not None and choice.mode in ("required", "tool"):
        # Anthropic refuses forced tool use while thinking: offer only the named tool instead
        if choice.mode == "tool":
            tools = [t for t in tools if t.name == choice.name]
        choice = ToolChoice("auto")
    if tools:
        body["tools"] = [_encode_tool(t) for t in tools]
    tool_choice = _encode_tool_choice(choice, req.parallel_tool_calls, bool(tools))
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if thinking is not None:
        body["thinking"] = thinking
    if req.response_format is not None and req.response_format.kind == "json_schema":
        schema = req.response_format.schema or {"type": "object"}
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if req.user and not _LOOKS_PERSONAL.search(req.user):
        body["metadata"] = {"user_id": req.user}
    if req.dialect == "anthropic":
        body.update(req.extra)
    if req.stream:
        body["stream"] = True
    return body


def _thinking(req: ChatRequest) -> dict[str, Any] | None:
    wanted = req.thinking
    if wanted is None or not wanted.enabled:
        return None
    # a tool turn in progress must start with its signed thinking; without it, think no more
    last = next((m for m in reversed(req.messages) if m.role == "assistant"), None)
    if last is not None and any(isinstance(p, ToolCall) for p in last.parts):
        first = last.parts[0] if last.parts else None
        if not (isinstance(first, Reasoning) and (first.signature or first.redacted)):
            return None
    budget = wanted.budget_tokens
    if budget is None:
        budget = EFFORT_BUDGET.get(wanted.effort or "medium", EFFORT_BUDGET["medium"])
    return {"type": "enabled", "budget_tokens": max(budget, MIN_THINKING_BUDGET)}


def _text_block(text: Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text.text}
    if text.cache_control is not None:
        block["cache_control"] = text.cache_control
    return block


def _encode_messages(req: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(req.messages):
        blocks = [
            b
            for j, part in enumerate(message.parts)
            if (b := _encode_part(part, f"messages[{i}].content[{j}]")) is not None
        ]
        if message.role == "user":  # tool results lead their turn
            blocks.sort(key=lambda b: b["type"] != "tool_result")
        if out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": message.role, "content": blocks})
    for turn in out:
        if not turn["content"]:
            turn["content"] = [{"type": "text", "text": " "}]
    if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        for block in out[-1]["content"]:
            if block["type"] == "text":
                block["text"] = block["text"].rstrip() or "."
    return out


def _encode_part(part: Part, where: str) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return _text_block(part) if part.text else None
    if isinstance(part, Image | Document):
        return _encode_media(part, where)
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": safe_tool_id(part.id),
            "name": part.name,
            "input": arguments_object(part.arguments),
        }
    if isinstance(part, ToolResult):
        content = [b for p in part.content if (b := _encode_part(p, where)) is not None]
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": safe_tool_id(part.call_id),
            "content": content,
        }
        if part.is_error:
            block["is_error"] = True
        if part.cache_control is not None:
            block["cache_control"] = part.cache_control
        return block
    if isinstance(part, Reasoning):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        return None  # unsigned (another vendor's) reasoning cannot be replayed to Claude
    if isinstance(part, Audio):
        raise untranslatable(where, "audio input", "Anthropic")
    raise untranslatable(where, type(part).__name__, "Anthropic")


def _encode_media(part: Image | Document, where: str) -> dict[str, Any]:
    kind = "image" if isinstance(part, Image) else "document"
    source: dict[str, Any]
    if isinstance(part, Document) and part.text is not None:
        source = {"type": "text", "media_type": "text/plain", "data": part.text}
    elif part.url is not None:
        source = {"type": "url", "url": part.url}
    elif part.data is not None:
        media = part.media_type or ("image/png" if kind == "image" else "application/pdf")
        source = {"type": "base64", "media_type": media, "data": part.data}
    else:
        raise invalid(where, f"the {kind} has neither data nor a URL")
    block: dict[str, Any] = {"type": kind, "source": source}
    if isinstance(part, Document) and (part.title or part.filename):
        block["title"] = part.title or part.filename
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _encode_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        out["strict"] = tool.strict
    if tool.cache_control is not None:
        out["cache_control"] = tool.cache_control
    return out


def _encode_tool_choice(
    choice: ToolChoice | None, parallel: bool | None, has_tools: bool
) -> dict[str, Any] | None:
    if not has_tools:
        return None
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if parallel is False else None
    if choice.mode == "none":
        return {"type": "none"}
    out: dict[str, Any] = {"type": {"auto": "auto", "required": "any", "tool": "tool"}[choice.mode]}
    if choice.mode == "tool":
        out["name"] = choice.name
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out
