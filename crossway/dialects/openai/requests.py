"""OpenAI chat-completion requests ⇄ the canonical `ChatRequest`.

Decoding hoists system and developer messages, folds `tool` messages into one user turn (tool
results first) and merges consecutive turns of one role. Encoding undoes that: tool results
become `tool` messages placed right after the assistant turn that called them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from crossway.dialects.common import (
    data_url,
    expect,
    invalid,
    made_up_id,
    optional_int,
    optional_number,
    optional_str,
    split_data_url,
    untranslatable,
)
from crossway.dialects.openai.responses import signature_of
from crossway.ir.chat import (
    Audio,
    ChatRequest,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    Role,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    arguments_text,
)

# fields decoding understands; anything else is OpenAI-only and stays in `extra`
_KNOWN = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "reasoning_effort", "user", "safety_identifier", "seed", "n",
    "functions", "function_call", "modalities",
}  # fmt: skip
# OpenAI's reasoning effort ⇄ a token budget, for dialects that think in budgets
EFFORT_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192,
                 "max": 16384}  # fmt: skip


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """What differs between OpenAI-format upstreams (set by the provider)."""

    max_tokens_field: str = "max_tokens"  # OpenAI itself prefers max_completion_tokens
    stream_usage: bool = True  # may `stream_options.include_usage` be sent


def decode_request(body: dict[str, Any]) -> ChatRequest:
    messages: list[Message] = []
    system: list[Text] = []
    raw_messages = expect(body.get("messages"), list, "messages", "an array of messages")
    for i, raw in enumerate(raw_messages):
        _decode_message(expect(raw, dict, f"messages[{i}]", "an object"), i, system, messages)
    req = ChatRequest(messages=messages, system=system, dialect="openai")
    req.model = optional_str(body, "model") or ""
    req.max_tokens = optional_int(body, "max_completion_tokens") or optional_int(body, "max_tokens")
    req.temperature = optional_number(body, "temperature")
    req.top_p = optional_number(body, "top_p")
    stop = body.get("stop")
    if isinstance(stop, str):
        req.stop = [stop]
    elif stop is not None:
        req.stop = [expect(s, str, "stop", "a string or an array of strings") for s in stop]
    req.stream = bool(body.get("stream"))
    req.tools = [_decode_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    req.tools += [_decode_function(f, i) for i, f in enumerate(body.get("functions") or [])]
    req.tool_choice = _decode_tool_choice(body.get("tool_choice", body.get("function_call")))
    parallel = body.get("parallel_tool_calls")
    req.parallel_tool_calls = parallel if isinstance(parallel, bool) else None
    req.response_format = _decode_response_format(body.get("response_format"))
    effort = optional_str(body, "reasoning_effort")
    if effort is not None:
        req.thinking = Thinking(enabled=effort != "none", effort=effort)
    req.user = optional_str(body, "safety_identifier") or optional_str(body, "user")
    req.seed = optional_int(body, "seed")
    req.n = optional_int(body, "n") or 1
    modalities = body.get("modalities")
    if isinstance(modalities, list) and all(isinstance(m, str) for m in modalities):
        req.modalities = list(modalities)
    req.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return req


def _append(messages: list[Message], role: Role, parts: list[Part]) -> None:
    """Add a turn, merging it into the previous one when the role repeats."""
    if messages and messages[-1].role == role:
        last = messages[-1].parts
        if role == "user" and parts and isinstance(parts[0], ToolResult):
            # tool results go before anything else of the user turn
            at = sum(1 for p in last if isinstance(p, ToolResult))
            last[at:at] = parts
        else:
            last.extend(parts)
    else:
        messages.append(Message(role, parts))


def _decode_message(raw: dict[str, Any], i: int, system: list[Text], out: list[Message]) -> None:
    role = raw.get("role")
    where = f"messages[{i}]"
    if role in ("system", "developer"):
        system.extend(p for p in _content(raw.get("content"), where) if isinstance(p, Text))
    elif role == "user":
        _append(out, "user", _content(raw.get("content"), where))
    elif role == "assistant":
        _append(out, "assistant", _assistant_parts(raw, where))
    elif role in ("tool", "function"):
        call_id = (
            raw.get("tool_call_id") if role == "tool" else made_up_id("call_", raw.get("name"))
        )
        if not isinstance(call_id, str):
            raise invalid(f"{where}.tool_call_id", "is required on a tool message")
        content = [p for p in _content(raw.get("content"), where) if isinstance(p, Text | Image)]
        _append(out, "user", [ToolResult(call_id, list(content))])
    else:
        raise invalid(f"{where}.role", f"unknown role {role!r}")


def _content(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    for j, raw in enumerate(expect(content, list, f"{where}.content", "a string or an array")):
        part = expect(raw, dict, f"{where}.content[{j}]", "an object")
        parts.append(_decode_part(part, f"{where}.content[{j}]"))
    return parts


def _decode_part(part: dict[str, Any], where: str) -> Part:
    kind = part.get("type")
    if kind == "text":
        return Text(expect(part.get("text"), str, f"{where}.text", "a string"))
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        url = expect(url, str, f"{where}.image_url.url", "a string")
        inline = split_data_url(url)
        if inline is None:
            return Image(url=url)
        if inline[0] == "application/pdf":
            return Document(data=inline[1])
        return Image(data=inline[1], media_type=inline[0])
    if kind == "file":
        file = expect(part.get("file"), dict, f"{where}.file", "an object")
        if file.get("file_id") is not None:
            raise invalid(
                f"{where}.file.file_id",
                "provider file ids cannot be used here; send the file as file_data",
                "unsupported_file_id",
            )
        data = expect(file.get("file_data"), str, f"{where}.file.file_data", "a string")
        inline = split_data_url(data)
        media, payload = inline if inline else ("application/pdf", data)
        return Document(media_type=media, data=payload, filename=file.get("filename"))
    if kind == "input_audio":
        audio = expect(part.get("input_audio"), dict, f"{where}.input_audio", "an object")
        return Audio(
            data=expect(audio.get("data"), str, f"{where}.input_audio.data", "a string"),
            format=str(audio.get("format") or "wav"),
        )
    if kind == "refusal":
        return Text(str(part.get("refusal") or ""))
    raise invalid(f"{where}.type", f"unknown content part type {kind!r}")


def _assistant_parts(raw: dict[str, Any], where: str) -> list[Part]:
    parts: list[Part] = []
    for block in raw.get("thinking_blocks") or []:  # signed reasoning handed back (extension)
        if isinstance(block, dict) and block.get("type") == "thinking":
            parts.append(Reasoning(str(block.get("thinking") or ""), block.get("signature")))
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking":
            parts.append(Reasoning(redacted=str(block.get("data") or "")))
    parts.extend(p for p in _content(raw.get("content"), where) if not _empty_text(p))
    for j, call in enumerate(raw.get("tool_calls") or []):
        at = f"{where}.tool_calls[{j}]"
        call = expect(call, dict, at, "an object")
        fn = expect(call.get("function"), dict, f"{at}.function", "an object")
        parts.append(
            ToolCall(
                id=expect(call.get("id"), str, f"{at}.id", "a string"),
                name=expect(fn.get("name"), str, f"{at}.function.name", "a string"),
                arguments=_arguments(fn.get("arguments")),
                signature=signature_of(call),
            )
        )
    fn = raw.get("function_call")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        parts.append(
            ToolCall(made_up_id("call_", fn["name"]), fn["name"], _arguments(fn.get("arguments")))
        )
    return parts


def _empty_text(part: Part) -> bool:
    return isinstance(part, Text) and not part.text


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else arguments_text(value)


def _decode_tool(raw: Any, i: int) -> Tool:
    tool = expect(raw, dict, f"tools[{i}]", "an object")
    if tool.get("type", "function") != "function":
        raise invalid(f"tools[{i}].type", f"tool type {tool.get('type')!r} cannot be translated")
    fn = expect(tool.get("function"), dict, f"tools[{i}].function", "an object")
    return _decode_function(fn, i, f"tools[{i}].function")


def _decode_function(fn: Any, i: int, where: str | None = None) -> Tool:
    where = where or f"functions[{i}]"
    fn = expect(fn, dict, where, "an object")
    params = fn.get("parameters")
    return Tool(
        name=expect(fn.get("name"), str, f"{where}.name", "a string"),
        description=fn.get("description") if isinstance(fn.get("description"), str) else None,
        parameters=params if isinstance(params, dict) else None,
        strict=fn.get("strict") if isinstance(fn.get("strict"), bool) else None,
    )


def _decode_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(mode=raw)
    if isinstance(raw, dict):
        fn = raw.get("function") if raw.get("type") == "function" else raw
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ToolChoice(mode="tool", name=fn["name"])
        if raw.get("type") == "allowed_tools":
            allowed = raw.get("allowed_tools") or {}
            return ToolChoice(mode="required" if allowed.get("mode") == "required" else "auto")
    raise invalid("tool_choice", "must be 'auto', 'none', 'required' or a named function")


def _decode_response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = expect(raw, dict, "response_format", "an object")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = expect(fmt.get("json_schema"), dict, "response_format.json_schema", "an object")
        return ResponseFormat(
            "json_schema",
            schema=spec.get("schema") if isinstance(spec.get("schema"), dict) else None,
            name=spec.get("name") if isinstance(spec.get("name"), str) else None,
            strict=spec.get("strict") if isinstance(spec.get("strict"), bool) else None,
        )
    if kind in ("json_object", "text"):
        return ResponseFormat(kind)
    raise invalid("response_format.type", "must be 'text', 'json_object' or 'json_schema'")


def prepare_passthrough(
    payload: dict[str, Any], model: str, options: UpstreamOptions, wants_usage: bool
) -> None:
    """The model, and for streams the usage Crossway needs to meter the request."""
    payload["model"] = model
    if not payload.get("stream") or wants_usage:
        return
    if options.stream_usage:
        stream_options = payload.get("stream_options")
        payload["stream_options"] = {
            **(stream_options if isinstance(stream_options, dict) else {}),
            "include_usage": True,
        }
    else:
        payload.pop("stream_options", None)


MAX_TOOL_NAME = 64  # OpenAI refuses longer function names; Anthropic allows 128


def short_tool_name(name: str) -> str:
    """A name OpenAI accepts: long ones cut, with a hash so that two never collide."""
    if len(name) <= MAX_TOOL_NAME:
        return name
    return f"{name[: MAX_TOOL_NAME - 9]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def renamed_tools(req: ChatRequest) -> dict[str, str]:
    """The names `encode_request` shortened: upstream name -> the caller's name."""
    names = {t.name for t in req.tools}
    names.update(p.name for m in req.messages for p in m.parts if isinstance(p, ToolCall))
    return {short_tool_name(n): n for n in names if len(n) > MAX_TOOL_NAME}


# --- encoding ----------------------------------------------------------------------------


def encode_request(
    req: ChatRequest, model: str, options: UpstreamOptions = UpstreamOptions()
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": _encode_messages(req)}
    if req.max_tokens is not None:
        body[options.max_tokens_field] = req.max_tokens
    for key, value in (
        ("temperature", req.temperature),
        ("top_p", req.top_p),
        ("seed", req.seed),
        ("user", req.user),
    ):
        if value is not None:
            body[key] = value
    if req.stop:
        body["stop"] = req.stop
    if req.n != 1:
        body["n"] = req.n
    if req.modalities is not None:
        body["modalities"] = req.modalities
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": short_tool_name(choice.name or "")}}
            if choice.mode == "tool"
            else choice.mode
        )
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.response_format is not None:
        body["response_format"] = _encode_response_format(req.response_format)
    if req.thinking is not None:
        body["reasoning_effort"] = _effort(req.thinking)
    if req.dialect == "openai":
        body.update(req.extra)
    if req.stream:
        body["stream"] = True
        if options.stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def _effort(thinking: Thinking) -> str:
    if not thinking.enabled:
        return "none"
    if thinking.effort is not None:
        return thinking.effort
    budget = thinking.budget_tokens or EFFORT_BUDGET["medium"]
    return next((e for e in ("low", "medium", "high") if budget <= EFFORT_BUDGET[e]), "high")


def _encode_messages(req: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": "\n".join(t.text for t in req.system)})
    for i, message in enumerate(req.messages):
        if message.role == "assistant":
            out.append(_encode_assistant(message, i))
            continue
        images: list[Part] = []
        rest: list[Part] = []
        for part in message.parts:
            if isinstance(part, ToolResult):
                text = "".join(p.text for p in part.content if isinstance(p, Text))
                images.extend(p for p in part.content if not isinstance(p, Text))
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": part.call_id,
                        "content": f"Error: {text}" if part.is_error else text,
                    }
                )
            else:
                rest.append(part)
        # media a tool returned travel in one user message after the tool messages
        rest = images + rest
        if rest:
            content = [_encode_part(p, f"messages[{i}]") for p in rest]
            simple = len(content) == 1 and content[0]["type"] == "text"
            out.append({"role": "user", "content": content[0]["text"] if simple else content})
    return out


def _encode_assistant(message: Message, i: int) -> dict[str, Any]:
    text = "".join(p.text for p in message.parts if isinstance(p, Text))
    calls = [
        {
            "id": p.id,
            "type": "function",
            "function": {"name": short_tool_name(p.name), "arguments": p.arguments},
        }
        for p in message.parts
        if isinstance(p, ToolCall)
    ]
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = calls
    elif not text:
        out["content"] = ""
    return out


def _encode_part(part: Part, where: str) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        url = part.url or data_url(part.media_type or "image/png", part.data or "")
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(part, Document):
        if part.text is not None:
            return {"type": "text", "text": part.text}
        if part.data is None:
            raise untranslatable(where, "a document given by URL", "OpenAI")
        file: dict[str, Any] = {"file_data": data_url(part.media_type, part.data)}
        file["filename"] = part.filename or part.title or "document.pdf"
        return {"type": "file", "file": file}
    if isinstance(part, Audio):
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
    raise untranslatable(where, type(part).__name__, "OpenAI")


def _encode_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": short_tool_name(tool.name)}
    if tool.description is not None:
        fn["description"] = tool.description
    fn["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _encode_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.kind != "json_schema":
        return {"type": fmt.kind}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}
