"""Reading Gemini requests for the simulated upstream (see `crossway.testing.gemini`).

Field names are read in camelCase or snake_case, as proto JSON is, and come out in snake_case;
an unknown name is refused as the real API refuses it. The checks are the ones the real API
makes on turns, function calls, thought signatures, file URIs and tools; each failure is an
`Invalid` whose text is the real API's message (a 400 INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

import orjson

_MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
_TASKS = {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY"}
_TASKS |= {"CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION"}
_TASKS |= {"CODE_RETRIEVAL_QUERY"}
# What AI Studio can read by URI: its own Files API and YouTube (Vertex also gs:// and the web).
_READABLE = re.compile(
    r"https://(generativelanguage\.googleapis\.com/v1(beta)?/files/[^/?#]+$|"
    r"(www\.)?youtube\.com/|youtu\.be/)"
)
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {n}. Please "
    "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
_COUNTS = (
    "Please ensure that the number of function response parts is equal to the number of "
    "function call parts of the function call turn."
)


def _fields(names: str, **children: str) -> dict[str, str | None]:
    return {**dict.fromkeys(names.split()), **children}


# The request messages by proto (snake_case) field name. A value names the message type of the
# field ("[]": repeated); None takes the value as it is (scalars, enums, Struct, schemas).
_MESSAGES: dict[str, dict[str, str | None]] = {
    "request": _fields(
        "model safety_settings cached_content service_tier labels simulate",
        contents="content[]",
        system_instruction="content",
        tools="tool[]",
        tool_config="tool_config",
        generation_config="generation_config",
    ),
    "generation_config": _fields(
        "candidate_count stop_sequences max_output_tokens temperature top_p top_k seed "
        "response_mime_type response_schema response_json_schema response_json_schema_ordered "
        "presence_penalty frequency_penalty response_logprobs logprobs response_modalities "
        "enable_enhanced_civic_answers speech_config image_config media_resolution "
        "audio_timestamp routing_config model_selection_config",
        thinking_config="thinking_config",
    ),
    "thinking_config": _fields("include_thoughts thinking_budget thinking_level"),
    "content": _fields("role", parts="part[]"),
    "part": _fields(
        "text thought thought_signature executable_code code_execution_result video_metadata "
        "part_metadata media_resolution",
        inline_data="blob",
        file_data="file_data",
        function_call="function_call",
        function_response="function_response",
    ),
    "blob": _fields("mime_type data display_name"),
    "file_data": _fields("mime_type file_uri display_name"),
    "function_call": _fields("id name args partial_args will_continue"),
    "function_response": _fields("id name response parts will_continue scheduling"),
    "tool": _fields(
        "google_search_retrieval code_execution google_search computer_use url_context "
        "file_search google_maps retrieval enterprise_web_search",
        function_declarations="function_declaration[]",
    ),
    "function_declaration": _fields(
        "name description parameters parameters_json_schema response response_json_schema behavior"
    ),
    "tool_config": _fields("retrieval_config", function_calling_config="calling_config"),
    "calling_config": _fields("mode allowed_function_names stream_function_call_arguments"),
    "count": _fields("model simulate", contents="content[]", generate_content_request="request"),
    "embed": _fields(
        "model task_type title output_dimensionality auto_truncate simulate",
        content="content",
        embed_content_config="embed_config",
    ),
    "embed_config": _fields(
        "task_type title output_dimensionality auto_truncate document_ocr audio_track_extraction"
    ),
    "batch": _fields("model simulate", requests="embed[]"),
}
# Fields only Vertex knows (message.field); AI Studio refuses them as unknown names.
_VERTEX_ONLY = {"request.labels", "generation_config.audio_timestamp", "tool.retrieval"}
_VERTEX_ONLY |= {"generation_config.routing_config", "generation_config.model_selection_config"}
_VERTEX_ONLY |= {"tool.enterprise_web_search", "function_call.partial_args", "embed.auto_truncate"}
_VERTEX_ONLY |= {"function_call.will_continue", "calling_config.stream_function_call_arguments"}
_VERTEX_ONLY |= {"embed.embed_content_config"}


class Invalid(Exception):
    """A request the real API refuses with 400 INVALID_ARGUMENT; the text is the message."""


# --- reading requests -------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def normalize(value: Any, kind: str, vertex: bool, at: str = "") -> dict[str, Any]:
    """The message with snake_case names; unknown names are refused as the real API does."""
    bad = "Invalid JSON payload received."
    if not isinstance(value, dict):
        raise Invalid(f"{bad} Invalid value at '{at}': a message must be a JSON object.")
    known, where = _MESSAGES[kind], f" at '{at}'" if at else ""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _snake(key)
        if name not in known or (f"{kind}.{name}" in _VERTEX_ONLY and not vertex):
            raise Invalid(f'{bad} Unknown name "{key}"{where}: Cannot find field.')
        child, path = known[name], f"{at}.{name}" if at else name
        if child is None or item is None:
            out[name] = item
        elif child.endswith("[]") != isinstance(item, list):
            repeated = not isinstance(item, list)
            problem = "is repeated, a list is expected" if repeated else "cannot start list"
            raise Invalid(f'{bad} Unknown name "{key}"{where}: Proto field {problem}.')
        elif isinstance(item, list):
            kind_of = child.removesuffix("[]")
            out[name] = [normalize(x, kind_of, vertex, f"{path}[{i}]") for i, x in enumerate(item)]
        else:
            out[name] = normalize(item, child, vertex, path)
    return out


def get_parts(content: Any) -> list[dict[str, Any]]:
    return (content or {}).get("parts") or []


def texts(parts: list[dict[str, Any]]) -> str:
    said = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
    return " ".join(said)


def _part_chars(part: dict[str, Any]) -> int:
    if isinstance(part.get("text"), str):
        return len(part["text"])
    if part.get("function_call") is not None:
        return len(orjson.dumps(part["function_call"].get("args") or {}))
    if part.get("function_response") is not None:
        return len(orjson.dumps(part["function_response"].get("response") or {}))
    return 0


def media(parts: list[dict[str, Any]], kind: str) -> int:
    return sum(p.get(kind) is not None for p in parts)


def prompt_tokens(req: dict[str, Any]) -> int:
    """About four characters a token, 4 per content and 258 per inline or file part."""
    units = [req["system_instruction"]] if req.get("system_instruction") else []
    total = 0
    for content in units + list(req.get("contents") or []):
        parts = get_parts(content)
        total += 4 + math.ceil(sum(_part_chars(p) for p in parts) / 4)
        total += 258 * (media(parts, "inline_data") + media(parts, "file_data"))
    return max(total, 1)


# --- validation ---------------------------------------------------------------------------------


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_contents(contents: list[dict[str, Any]], message: str) -> None:
    if not contents:
        raise Invalid(f"* {message}.contents: contents is not specified")
    if any(c.get("role") not in (None, "", "user", "model") for c in contents):
        raise Invalid("Please use a valid role: user, model.")
    for n, content in enumerate(contents):
        if not get_parts(content):
            raise Invalid(f"* {message}.contents[{n}].parts: contents.parts must not be empty.")


def _check_turns(contents: list[dict[str, Any]], model: str) -> None:
    """Function calls follow a user turn and are answered, part for part, in the next turn."""
    asked: list[dict[str, Any]] = []  # the function calls of the turn before
    for n, content in enumerate(contents):
        parts = get_parts(content)
        calls = [p for p in parts if p.get("function_call") is not None]
        answers = [p for p in parts if p.get("function_response") is not None]
        if answers and not asked:
            raise Invalid(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        if asked and len(answers) != len(asked):
            raise Invalid(_COUNTS)
        if calls and (n == 0 or contents[n - 1].get("role") == "model"):
            raise Invalid(
                "Please ensure that function call turn comes immediately after a user turn or "
                "after a function response turn."
            )
        for part in calls if model.startswith("gemini-3") else []:
            if not part.get("thought_signature"):  # "skip_thought_signature_validator" passes
                raise Invalid(_SIGNATURE.format(name=part["function_call"].get("name"), n=n + 1))
        asked = calls if content.get("role") == "model" else []


def check_generate(req: dict[str, Any], model: str, vertex: bool) -> None:
    contents = req.get("contents") or []
    check_contents(contents, "GenerateContentRequest")
    _check_turns(contents, model)
    for part in (p for c in contents for p in get_parts(c)):
        uri = (part.get("file_data") or {}).get("file_uri")
        if isinstance(uri, str) and not vertex and not _READABLE.match(uri):
            raise Invalid(f"Unsupported file uri: {uri}")
    declared = 0
    for i, tool in enumerate(req.get("tools") or []):
        for j, fd in enumerate(tool.get("function_declarations") or []):
            at = f"* GenerateContentRequest.tools[{i}].function_declarations[{j}]"
            if not fd.get("name"):
                raise Invalid(f"{at}.name: Name cannot be empty.")
            if not _FUNCTION_NAME.match(str(fd["name"])):
                raise Invalid(
                    f"{at}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), "
                    "colons (:), or dashes (-), with a maximum length of 64."
                )
            if fd.get("parameters") is not None and fd.get("parameters_json_schema") is not None:
                raise Invalid(
                    f"{at}: parameters and parameters_json_schema are mutually exclusive; "
                    "set only one of them."
                )
            declared += 1
    mode = ((req.get("tool_config") or {}).get("function_calling_config") or {}).get("mode")
    if mode is not None and mode not in _MODES:
        raise Invalid(
            "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "{mode}"'
        )
    config = req.get("generation_config") or {}
    if declared and config.get("response_mime_type") == "application/json":
        raise Invalid(
            "Function calling with a response mime type: 'application/json' is unsupported"
        )


def embed_request(req: dict[str, Any], at: str) -> tuple[str, int]:
    """The text to embed and the size of the vector, from an EmbedContentRequest."""
    config = {**req, **(req.get("embed_content_config") or {})}  # Vertex nests the options
    parts = get_parts(req.get("content"))
    if not parts:
        raise Invalid(f"* {at}.content: content is not specified")
    task = config.get("task_type")
    if task is not None and task not in _TASKS:
        raise Invalid(
            f"Invalid value at '{at}.task_type' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.TaskType), "{task}"'
        )
    dims = config.get("output_dimensionality")
    return texts(parts), dims if is_int(dims) and dims > 0 else 768
