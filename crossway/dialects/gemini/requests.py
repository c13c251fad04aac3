"""Gemini generateContent requests ⇄ the canonical `ChatRequest`.

Decoding accepts every field name in camelCase and snake_case, as Google's own servers do
(the model is not in the body: the front door sets it from the path). Function calls
without ids get deterministic ones, and each `functionResponse` is matched to its call by id,
else by name in order. Encoding writes camelCase, keeps call/response turns paired (all
responses of one turn in one content), hoists system text into `systemInstruction`, sends
JSON Schemas as `parametersJsonSchema` / `responseJsonSchema`, and gives each function call
of a turn the `thoughtSignature` it came with (or, for another vendor's history, the value
Google documents for that case).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from crossway.dialects.common import expect, invalid, made_up_id, untranslatable
from crossway.dialects.openai.requests import EFFORT_BUDGET, UpstreamOptions
from crossway.ir.chat import (
    Audio,
    ChatRequest,
    Document,
    Image,
    Message,
    Part,
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

SKIP_SIGNATURE = "skip_thought_signature_validator"  # for calls made by another vendor
_KNOWN = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
_SNAKE = re.compile(r"([A-Z])")
_SNAKE_NAMES: dict[str, str] = {}
_BY_ENDING = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
              "webp": "image/webp", "pdf": "application/pdf"}  # fmt: skip
_LEVEL_EFFORT = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def get(data: dict[str, Any], camel: str) -> Any:
    """A field by its camelCase name, or its snake_case one."""
    if camel in data:
        return data[camel]
    snake = _SNAKE_NAMES.get(camel)
    if snake is None:  # names are few: each converted once (this runs per stream chunk)
        snake = _SNAKE_NAMES[camel] = _SNAKE.sub(r"_\1", camel).lower()
    return data.get(snake)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def decode_request(body: dict[str, Any]) -> ChatRequest:
    contents = expect(get(body, "contents"), list, "contents", "an array of contents")
    if not contents:
        raise invalid("contents", "must not be empty")
    req = ChatRequest(messages=_decode_contents(contents), dialect="gemini")
    system = get(body, "systemInstruction")
    if isinstance(system, dict):
        parts = get(system, "parts") or []
        req.system = [Text(str(p["text"])) for p in parts if isinstance(p, dict) and p.get("text")]
    elif isinstance(system, str) and system:
        req.system = [Text(system)]
    req.tools = _decode_tools(get(body, "tools") or [])
    _decode_tool_config(get(body, "toolConfig"), req)
    config = get(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise invalid("generationConfig", "must be an object")
    _decode_generation(config, req)
    req.extra = {camel(k): v for k, v in body.items() if camel(k) not in _KNOWN}
    return req


def _decode_contents(contents: list[Any]) -> list[Message]:
    messages: list[Message] = []
    calls: list[ToolCall] = []  # the calls of the last model turn, for unnamed responses
    for i, raw in enumerate(contents):
        content = expect(raw, dict, f"contents[{i}]", "an object")
        role = content.get("role") or "user"
        parts = expect(get(content, "parts") or [], list, f"contents[{i}].parts", "an array")
        if role == "model":
            decoded = [
                _decode_part(p, f"contents[{i}].parts[{j}]", i, j) for j, p in enumerate(parts)
            ]
            out = [p for p in decoded if p is not None]
            calls = [p for p in out if isinstance(p, ToolCall)]
            _append(messages, Message("assistant", out))
            continue
        if role not in ("user", "function", "tool"):
            raise invalid(f"contents[{i}].role", f"unknown role {role!r}")
        out = []
        pending = list(calls)
        for j, raw_part in enumerate(parts):
            where = f"contents[{i}].parts[{j}]"
            part = expect(raw_part, dict, where, "an object")
            response = get(part, "functionResponse")
            if isinstance(response, dict):
                out.append(_decode_response(response, pending, where))
                continue
            decoded_part = _decode_part(part, where, i, j)
            if decoded_part is not None:
                out.append(decoded_part)
        out.sort(key=lambda p: not isinstance(p, ToolResult))  # results lead the turn
        _append(messages, Message("user", out))
    return messages


def _append(messages: list[Message], message: Message) -> None:
    if messages and messages[-1].role == message.role:
        messages[-1].parts.extend(message.parts)
    else:
        messages.append(message)


def _decode_part(part: Any, where: str, turn: int, index: int) -> Part | None:
    part = expect(part, dict, where, "an object")
    if "text" in part:
        if part.get("thought"):
            return None  # thought summaries are not replayed: signatures ride on the calls
        return Text(str(part["text"]))
    inline = get(part, "inlineData")
    if isinstance(inline, dict):
        return _media(str(get(inline, "mimeType") or ""), data=get(inline, "data"), where=where)
    file = get(part, "fileData")
    if isinstance(file, dict):
        return _media(str(get(file, "mimeType") or ""), url=get(file, "fileUri"), where=where)
    call = get(part, "functionCall")
    if isinstance(call, dict):
        name = expect(call.get("name"), str, f"{where}.functionCall.name", "a string")
        return ToolCall(
            id=str(call.get("id") or made_up_id("call_", turn, index, name)),
            name=name,
            arguments=arguments_text(call.get("args") or {}),
            signature=get(part, "thoughtSignature"),
        )
    if get(part, "functionResponse") is not None:
        raise invalid(where, "a functionResponse belongs in a user turn")
    kinds = ", ".join(sorted(part)) or "an empty part"
    raise invalid(where, f"part {kinds} cannot be translated")


def _media(mime: str, *, data: Any = None, url: Any = None, where: str) -> Part:
    mime = mime.lower()
    if data is not None and not isinstance(data, str):
        raise invalid(where, "inlineData.data must be base64 text")
    if url is not None and not isinstance(url, str):
        raise invalid(where, "fileData.fileUri must be a string")
    if mime.startswith("image/") or (not mime and url):
        return Image(url=url, data=data, media_type=mime or None)
    if mime.startswith("audio/"):
        if data is None:
            raise untranslatable(where, "audio given by URI", "this")
        return Audio(data=data, format=mime.split("/", 1)[1].replace("mpeg", "mp3"))
    if mime.startswith("text/") and data is not None:
        import base64

        return Document("text/plain", text=base64.b64decode(data).decode("utf-8", "replace"))
    return Document(mime or "application/pdf", data=data, url=url)


def _decode_response(response: dict[str, Any], pending: list[ToolCall], where: str) -> ToolResult:
    name = response.get("name")
    call_id = response.get("id")
    match = next((c for c in pending if c.id == call_id), None) if call_id else None
    if match is None:
        match = next((c for c in pending if c.name == name), None)
    if match is not None:
        pending.remove(match)
        call_id = match.id
    if not isinstance(call_id, str):
        call_id = made_up_id("call_", where, name)
    body = response.get("response")
    error = isinstance(body, dict) and set(body) == {"error"}
    if isinstance(body, dict) and set(body) <= {"result", "output", "content", "error"} and body:
        value = next(iter(body.values()))
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
    else:
        text = orjson.dumps(body if body is not None else {}).decode()
    return ToolResult(call_id, [Text(text)], is_error=error)


def _decode_tools(tools: Any) -> list[Tool]:
    out: list[Tool] = []
    for i, tool in enumerate(expect(tools, list, "tools", "an array")):
        tool = expect(tool, dict, f"tools[{i}]", "an object")
        declarations = get(tool, "functionDeclarations")
        others = [camel(k) for k in tool if camel(k) != "functionDeclarations"]
        if others:
            raise invalid(f"tools[{i}]", f"tool {others[0]!r} cannot be translated")
        for j, decl in enumerate(declarations or []):
            where = f"tools[{i}].functionDeclarations[{j}]"
            decl = expect(decl, dict, where, "an object")
            schema = get(decl, "parametersJsonSchema")
            if schema is None and get(decl, "parameters") is not None:
                schema = openapi_to_json_schema(get(decl, "parameters"))
            out.append(
                Tool(
                    name=expect(decl.get("name"), str, f"{where}.name", "a string"),
                    description=decl.get("description")
                    if isinstance(decl.get("description"), str)
                    else None,
                    parameters=schema if isinstance(schema, dict) else None,
                )
            )
    return out


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset `Schema` as JSON Schema: lower-case types, `nullable` as a
    null type, `propertyOrdering` dropped."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = camel(key)
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: openapi_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = openapi_to_json_schema(value)
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _decode_tool_config(raw: Any, req: ChatRequest) -> None:
    if not isinstance(raw, dict):
        return
    config = get(raw, "functionCallingConfig")
    if not isinstance(config, dict):
        return
    mode = str(config.get("mode") or "AUTO").upper()
    names = get(config, "allowedFunctionNames") or []
    if mode == "NONE":
        req.tool_choice = ToolChoice("none")
    elif mode == "ANY" and len(names) == 1:
        req.tool_choice = ToolChoice("tool", names[0])
    elif mode == "ANY":
        req.tool_choice = ToolChoice("required")
    else:  # AUTO, VALIDATED
        req.tool_choice = ToolChoice("auto")
    if len(names) > 1 or (names and mode != "ANY"):
        req.tools = [t for t in req.tools if t.name in names]


def _decode_generation(config: dict[str, Any], req: ChatRequest) -> None:
    for attr, key in (("temperature", "temperature"), ("top_p", "topP")):
        value = get(config, key)
        if value is not None:
            setattr(
                req, attr, float(expect(value, (int, float), f"generationConfig.{key}", "a number"))
            )
    for attr, key in (("top_k", "topK"), ("max_tokens", "maxOutputTokens"), ("seed", "seed")):
        value = get(config, key)
        if value is not None:
            setattr(
                req, attr, int(expect(value, (int, float), f"generationConfig.{key}", "a number"))
            )
    modalities = get(config, "responseModalities")
    if isinstance(modalities, list):
        req.modalities = [str(m).lower() for m in modalities]
    count = get(config, "candidateCount")
    if count is not None:
        req.n = int(expect(count, int, "generationConfig.candidateCount", "an integer"))
    req.stop = [str(s) for s in get(config, "stopSequences") or []]
    mime = get(config, "responseMimeType")
    schema = get(config, "responseJsonSchema")
    if schema is None and get(config, "responseSchema") is not None:
        schema = openapi_to_json_schema(get(config, "responseSchema"))
    if mime == "application/json":
        req.response_format = (
            ResponseFormat("json_schema", schema=schema) if isinstance(schema, dict)
            else ResponseFormat("json_object")
        )  # fmt: skip
    thinking = get(config, "thinkingConfig")
    if isinstance(thinking, dict):
        budget = get(thinking, "thinkingBudget")
        level = get(thinking, "thinkingLevel")
        if budget == 0:
            req.thinking = Thinking(enabled=False)
        elif isinstance(level, str):
            req.thinking = Thinking(effort=_LEVEL_EFFORT.get(level.upper(), "medium"))
        elif isinstance(budget, int) and budget > 0:
            req.thinking = Thinking(budget_tokens=budget)
        elif get(thinking, "includeThoughts") or budget == -1:
            req.thinking = Thinking()


# --- encoding ----------------------------------------------------------------------------


def encode_request(
    req: ChatRequest, model: str, options: UpstreamOptions | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _encode_contents(req)}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in req.system if t.text]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_encode_tool(t) for t in req.tools]}]
        if req.response_format is not None and req.response_format.kind != "text":
            raise untranslatable(
                "response_format", "structured output together with tools", "Gemini"
            )
    if req.tool_choice is not None and req.tools:
        body["toolConfig"] = {"functionCallingConfig": _encode_tool_choice(req.tool_choice)}
    config = _encode_generation(req)
    if config:
        body["generationConfig"] = config
    if req.dialect == "gemini":
        body.update(req.extra)
    return body


def _encode_contents(req: ChatRequest) -> list[dict[str, Any]]:
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ToolCall)}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(req.messages):
        role = "model" if message.role == "assistant" else "user"
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(message.parts):
            encoded = _encode_part(part, f"messages[{i}].content[{j}]", names)
            if encoded is None:
                continue
            if isinstance(part, ToolCall):
                encoded["thoughtSignature"] = part.signature or SKIP_SIGNATURE
            parts.append(encoded)
        if not parts:
            parts = [{"text": " "}]
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


def _encode_part(part: Part, where: str, names: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"text": part.text} if part.text else None
    if isinstance(part, Image | Document):
        if isinstance(part, Document) and part.text is not None:
            return {"text": part.text}
        mime = part.media_type or ("application/pdf" if isinstance(part, Document) else "image/png")
        if part.data is not None:
            return {"inlineData": {"mimeType": mime, "data": part.data}}
        if part.url is not None:
            return {
                "fileData": {"mimeType": part.media_type or _guess(part.url), "fileUri": part.url}
            }
        raise invalid(where, "media with neither data nor a URL")
    if isinstance(part, Audio):
        mime = {"mp3": "audio/mp3", "wav": "audio/wav"}.get(part.format, f"audio/{part.format}")
        return {"inlineData": {"mimeType": mime, "data": part.data}}
    if isinstance(part, ToolCall):
        return {"functionCall": {"name": part.name, "args": arguments_object(part.arguments)}}
    if isinstance(part, ToolResult):
        text = "".join(p.text for p in part.content if isinstance(p, Text))
        try:
            value: Any = orjson.loads(text) if text.strip() else ""
        except orjson.JSONDecodeError:
            value = text
        response = {"error": value} if part.is_error else {"result": value}
        return {"functionResponse": {"name": names.get(part.call_id, "tool"), "response": response}}
    return None  # reasoning of another vendor: nothing Gemini can use


def _guess(url: str) -> str:
    ending = url.lower().split("?", 1)[0].rsplit(".", 1)[-1]
    return _BY_ENDING.get(ending, "image/jpeg")


def _encode_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if tool.parameters:
        out["parametersJsonSchema"] = {k: v for k, v in tool.parameters.items() if k != "$schema"}
    return out


def _encode_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}


def _encode_generation(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("topK", req.top_k),
        ("seed", req.seed),
    ):
        if value is not None:
            config[key] = value
    if req.stop:
        config["stopSequences"] = req.stop[:5]
    if req.n != 1:
        config["candidateCount"] = req.n
    if req.modalities is not None:
        config["responseModalities"] = [m.upper() for m in req.modalities]
    fmt = req.response_format
    if fmt is not None and fmt.kind != "text":
        config["responseMimeType"] = "application/json"
        if fmt.kind == "json_schema" and fmt.schema:
            config["responseJsonSchema"] = fmt.schema
    thinking = req.thinking
    if thinking is not None:
        if not thinking.enabled:
            config["thinkingConfig"] = {"thinkingBudget": 0}
        else:
            budget = thinking.budget_tokens or EFFORT_BUDGET.get(thinking.effort or "medium", 2048)
            config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return config
