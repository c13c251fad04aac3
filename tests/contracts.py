"""Contract checks against OpenAI's published OpenAPI spec (test support, not shipped).

    validate_openai("CreateChatCompletionResponse", body)     # AssertionError on mismatch
    openai_request_schema("POST", "/v1/chat/completions")      # -> "CreateChatCompletionRequest"
    openai_response_schema("GET", "/v1/models/gpt-4o", 200)    # -> "Model"
    chunks = validate_sse_chat_stream(raw_sse_bytes)           # parsed chunks, [DONE] enforced

The spec is `shared/specs/openai.openapi.yaml` next to the repo (override the directory with
CROSSWAY_SPECS_DIR). It is parsed once per process; a normalised JSON copy keyed by the file's
sha256 is kept in `<tmp>/crossway-spec-cache/` so later processes skip the slow YAML parse.
Loading rewrites OpenAPI 3.0 leftovers into their JSON Schema 2020-12 meaning (see
`_normalize`) and then applies the few deliberate deviations listed in `SPEC_PATCHES`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = "openai.openapi.yaml"
SPECS_DIR_ENV = "CROSSWAY_SPECS_DIR"
CACHE_DIR = Path(tempfile.gettempdir()) / "crossway-spec-cache"
# Bump whenever _normalize changes, so stale cached copies are not reused.
_NORMALIZE_VERSION = b"crossway-openai-normalize-1"
# Base URI of the spec document in the registry; "#/components/..." refs resolve against it.
_SPEC_URI = "https://crossway.invalid/specs/openai.openapi.json"
_Json = dict[str, Any]


class SpecNotFoundError(FileNotFoundError):
    """The OpenAI spec file is missing: contract tests must fail, never skip."""


# --------------------------------------------------------------------------- spec patches
# Deliberate, minimal deviations from the published spec where real OpenAI responses do not
# match it. Each entry: (JSON pointer into the spec, transform of the schema found there, why).
# Every pointer must exist; a spec update that moves one makes loading fail loudly.


def _or_null(schema: _Json) -> _Json:
    return {"anyOf": [schema, {"type": "null"}]}


def _or_base64_string(schema: _Json) -> _Json:
    return {"anyOf": [schema, {"type": "string"}]}  # base64 of little-endian float32s


SPEC_PATCHES: tuple[tuple[str, Callable[[_Json], _Json], str], ...] = (
    (
        "/components/schemas/Embedding/properties/embedding",
        _or_base64_string,
        "with encoding_format=base64 (the openai SDK's default) the API returns the vector as "
        "a base64 string; the spec only allows an array (openai/openai-openapi#424)",
    ),
    (
        "/components/schemas/CreateChatCompletionResponse/properties/system_fingerprint",
        _or_null,
        "the API sends system_fingerprint: null for some models; the SDKs type it Optional "
        "(openai/openai-openapi#167)",
    ),
    (
        "/components/schemas/CreateChatCompletionStreamResponse/properties/system_fingerprint",
        _or_null,
        "same as above, in stream chunks (openai/openai-openapi#167)",
    ),
)


def _apply_patches(spec: _Json) -> None:
    apply_patches(spec, SPEC_PATCHES)


def apply_patches(spec: _Json, patches: Any) -> None:
    """Apply (JSON pointer, transform, why) patches; a pointer that is gone fails loudly
    (shared with anthropic_contracts)."""
    for pointer, transform, _why in patches:
        *parents, last = pointer.strip("/").split("/")
        node: Any = spec
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(last), dict):
            raise RuntimeError(f"spec patch target {pointer} not found; review SPEC_PATCHES")
        node[last] = transform(node[last])


# --------------------------------------------------------------------------- normalisation
# Keys whose values are data (examples, defaults, enum members), not schemas.
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const"})
# Keys whose values map names (which may be "default", "type", ...) to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
# Annotation-only keys: a schema made only of these constrains nothing.
_ANNOTATIONS = frozenset({"nullable", "description", "title", "default", "example", "deprecated"})
# Keywords that apply to non-null instances beyond their type: `nullable` must wrap them.
_COMBINATORS = frozenset({"$ref", "allOf", "anyOf", "oneOf", "not", "if", "const"})


def _is_null_marker(schema: object) -> bool:
    """`{nullable: true}` alone: the OpenAPI 3.0 idiom `allOf: [{$ref: X}, {nullable: true}]`."""
    return (
        isinstance(schema, dict)
        and schema.get("nullable") is True
        and all(k in _ANNOTATIONS or k.startswith("x-") for k in schema)
    )


def _fix_schema(s: _Json, component: str | None) -> _Json:
    """Rewrite one schema object's OpenAPI 3.0 / draft 2019-09 leftovers (not its children)."""
    s = dict(s)
    all_of = s.get("allOf")
    if isinstance(all_of, list) and any(_is_null_marker(m) for m in all_of):
        s["allOf"] = [m for m in all_of if not _is_null_marker(m)]
        if not s["allOf"]:
            del s["allOf"]
        s["nullable"] = True
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = s.get(exclusive)
        if isinstance(flag, bool):  # 3.0: boolean modifier of minimum/maximum
            del s[exclusive]
            if flag and bound in s:
                s[exclusive] = s.pop(bound)
    if s.get("$recursiveAnchor") is True:  # draft 2019-09, ignored by 2020-12
        del s["$recursiveAnchor"]
    if s.get("$recursiveRef") == "#" and component is not None:
        del s["$recursiveRef"]
        s["$ref"] = f"#/components/schemas/{component}"
    nullable = s.pop("nullable", None) if isinstance(s.get("nullable"), bool) else None
    if not nullable:
        return s
    if _COMBINATORS & s.keys():
        return {"anyOf": [{"type": "null"}, s]}
    kind = s.get("type")
    if isinstance(kind, str):
        s["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        s["type"] = [*kind, "null"]
    if isinstance(s.get("enum"), list) and None not in s["enum"]:
        s["enum"] = [*s["enum"], None]
    return s


def _normalize(node: Any, component: str | None = None, data: bool = False) -> Any:
    """Return a JSON-safe copy of the spec with schemas in JSON Schema 2020-12 terms.

    - `nullable: true` -> `type: [T, "null"]` (+ null in `enum`), or `anyOf: [null, S]` when S
      has `$ref`/combinators; `allOf: [S, {nullable: true}]` -> nullable S; `nullable: false`
      dropped.
    - boolean `exclusiveMinimum/Maximum` (3.0) -> numeric form.
    - `$recursiveRef: "#"` -> `$ref` to the enclosing component (2020-12 ignores the former).
    - YAML dates -> ISO strings, integers beyond 64 bits -> floats (orjson cannot encode them).
    """
    if isinstance(node, dict):
        if data:
            return {k: _normalize(v, component, data=True) for k, v in node.items()}
        out: _Json = {}
        for k, v in _fix_schema(node, component).items():
            if k in _SCHEMA_MAPS and isinstance(v, dict):  # keys are names, values schemas
                out[k] = {name: _normalize(sub, component) for name, sub in v.items()}
            else:
                out[k] = _normalize(v, component, k in _DATA_KEYS or k.startswith("x-"))
        return out
    if isinstance(node, list):
        return [_normalize(v, component, data) for v in node]
    if isinstance(node, date | datetime):
        return node.isoformat()
    if isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**64:
        return float(node)
    return node


def _normalize_spec(raw: _Json) -> _Json:
    spec = dict(raw)
    components = dict(spec.get("components") or {})
    schemas = components.pop("schemas", {}) or {}
    spec["components"] = components
    normalized: _Json = _normalize(spec)
    normalized["components"]["schemas"] = {n: _normalize(s, n) for n, s in schemas.items()}
    return normalized


# --------------------------------------------------------------------------- loading
def spec_path() -> Path:
    """Where the OpenAI spec is expected (CROSSWAY_SPECS_DIR overrides the directory)."""
    override = os.environ.get(SPECS_DIR_ENV)
    specs_dir = Path(override) if override else Path(__file__).resolve().parents[2] / "shared/specs"
    return specs_dir / SPEC_FILE


def _read_spec(path: Path, cache_dir: Path) -> _Json:
    """Normalised spec (without patches): from the sha256-keyed JSON cache, else from YAML."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecNotFoundError(
            f"OpenAI spec not found at {path}; put {SPEC_FILE} there or set {SPECS_DIR_ENV} "
            "to the directory holding it"
        ) from None
    digest = hashlib.sha256(_NORMALIZE_VERSION + b"\0" + raw).hexdigest()
    cached = cache_dir / f"openai-{digest}.json"
    try:
        spec = orjson.loads(cached.read_bytes())
        if isinstance(spec, dict):
            return spec
    except (OSError, orjson.JSONDecodeError):
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _normalize_spec(yaml.load(raw, Loader=loader))
    _write_atomically(cached, orjson.dumps(spec))
    return spec


def _write_atomically(target: Path, content: bytes) -> None:
    """Best effort: write-then-rename, so concurrent processes never read a partial file."""
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
    except OSError:
        return  # no writable cache directory: just parse the YAML again next time
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


@cache
def _spec() -> _Json:
    spec = _read_spec(spec_path(), CACHE_DIR)
    _apply_patches(spec)
    return spec


def schema_validator(spec: _Json, uri: str, schema_name: str, label: str) -> Draft202012Validator:
    """A validator for #/components/schemas/<schema_name> of a spec known under `uri`
    (shared with anthropic_contracts); LookupError naming close names if there is none."""
    schemas = spec["components"]["schemas"]
    if schema_name not in schemas:
        hint = difflib.get_close_matches(schema_name, schemas, n=3)
        raise LookupError(f"no schema {schema_name!r} in the {label} spec; close: {hint}")
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    ref = {"$ref": f"{uri}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=registry)


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    return schema_validator(_spec(), _SPEC_URI, schema_name, "OpenAI")


# --------------------------------------------------------------------------- validation
def _short(text: str, limit: int = 300) -> str:  # shared with anthropic_contracts
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _closest_branch_error(error: ValidationError) -> ValidationError:
    """For an anyOf/oneOf failure, the error of the branch the payload most likely meant.

    That is the branch whose tag-like fields (enum/const one level down, e.g. `type`) matched,
    then the one with fewest errors; nested anyOf/oneOf failures are followed down.
    """
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def score(errors: list[ValidationError]) -> tuple[int, int]:
        tags = sum(e.validator in ("enum", "const") and len(e.relative_path) <= 1 for e in errors)
        return tags, len(errors)

    inner = best_match(min(branches.values(), key=score))
    assert inner is not None
    return _closest_branch_error(inner) if inner.context else inner


def _describe(error: ValidationError) -> str:
    line = f"  at {error.json_path}: {_short(error.message)}"
    if error.context:
        inner = _closest_branch_error(error)
        line += f"\n    closest branch, at {inner.json_path}: {_short(inner.message)}"
    return line


def assert_matches(validator: Draft202012Validator, payload: object, what: str) -> None:
    """Raise AssertionError listing (at most 8 of) the ways payload fails the schema."""
    errors = list(validator.iter_errors(payload))
    if errors:
        errors.sort(key=lambda e: (list(map(str, e.absolute_path)), str(e.validator)))
        shown = "\n".join(_describe(e) for e in errors[:8])
        more = f"\n  ... and {len(errors) - 8} more" if len(errors) > 8 else ""
        raise AssertionError(
            f"payload does not match {what} ({len(errors)} error(s)):\n{shown}{more}"
        )


def validate_openai(schema_name: str, payload: object) -> None:
    """Assert that payload matches #/components/schemas/<schema_name> of the OpenAI spec."""
    assert_matches(_validator(schema_name), payload, f"OpenAI schema {schema_name}")


# --------------------------------------------------------------------------- operations
def _deref(node: Any) -> Any:
    """Follow local `$ref`s (e.g. to #/components/responses/...)."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = _spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _operation(method: str, path: str) -> tuple[str, _Json]:
    """(path template, operation object) for a request path or URL; /v1 prefix optional."""
    path = "/" + urlsplit(path).path.strip("/") if "://" in path else path.split("?", 1)[0]
    path = "/" + path.strip("/")
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:]
    segments = path.split("/")
    matches: list[tuple[int, str]] = []
    for template in _spec()["paths"]:
        if "?" in template:  # e.g. "/responses/{id}?beta=true" variants: not separate paths
            continue
        parts = template.rstrip("/").split("/")
        if len(parts) == len(segments) and all(
            t == s or (bool(s) and t.startswith("{") and t.endswith("}"))
            for t, s in zip(parts, segments, strict=True)
        ):
            matches.append((sum(t.startswith("{") for t in parts), template))
    if not matches:
        raise LookupError(f"no OpenAI operation matches path {path!r}")
    for _, template in sorted(matches):  # literal segments win over {params}
        operation = _spec()["paths"][template].get(method.lower())
        if isinstance(operation, dict):
            return template, operation
    raise LookupError(f"OpenAI spec has no {method.upper()} operation for {path!r}")


def _json_schema_name(body: Any) -> str | None:
    schema = (_deref(body) or {}).get("content", {}).get("application/json", {}).get("schema")
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    match = re.fullmatch(r"#/components/schemas/([^/]+)", ref or "")
    return match[1] if match else None


def openai_request_schema(method: str, path: str) -> str:
    """Component schema name of an operation's application/json request body."""
    template, operation = _operation(method, path)
    name = _json_schema_name(operation.get("requestBody"))
    if name is None:
        raise LookupError(f"{method.upper()} {template} has no application/json request schema")
    return name


def openai_response_schema(method: str, path: str, status: int) -> str:
    """Component schema name of an operation's application/json response for `status`.

    Statuses >= 400 that the spec does not describe fall back to ErrorResponse.
    """
    template, operation = _operation(method, path)
    responses = operation.get("responses", {})
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            name = _json_schema_name(responses[key])
            if name is not None:
                return name
            break
    if status >= 400:
        return "ErrorResponse"
    raise LookupError(f"{method.upper()} {template} has no application/json {status} schema")


# --------------------------------------------------------------------------- SSE
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _sse_data_events(raw: bytes) -> list[str]:
    """The `data` of each event of an SSE body, per the WHATWG event-stream rules."""
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"SSE body is not UTF-8: {exc}") from None
    lines = _LINE_BREAK.split(text)
    if lines.pop():  # text after the last line break: an unterminated line
        raise AssertionError("SSE body ends mid-line; the last event must end with a blank line")
    events: list[str] = []
    data: list[str] | None = None  # None: no event in progress
    for line in lines:
        if not line:
            if data and (joined := "\n".join(data)):  # an event with empty data is not sent
                events.append(joined)
            data = None
        elif not line.startswith(":"):  # ":..." is a comment (keep-alive)
            field, _, value = line.partition(":")
            data = data if data is not None else []
            if field == "data":
                data.append(value.removeprefix(" "))
    if data is not None:  # clients drop an event that is not closed by a blank line
        raise AssertionError("SSE body ends mid-event; the last event must end with a blank line")
    return events


def validate_sse_chat_stream(raw: bytes) -> list[dict[str, Any]]:
    """Check a chat-completions SSE body; return its JSON chunks (without [DONE]).

    Every chunk must match CreateChatCompletionStreamResponse, except `{"error": ...}` chunks,
    which must match ErrorResponse; `data: [DONE]` must be the last event.
    """
    events = _sse_data_events(raw)
    if not events or events[-1] != "[DONE]":
        last = _short(events[-1], 120) if events else "<no events>"
        raise AssertionError(f"SSE stream must end with 'data: [DONE]'; last event: {last!r}")
    chunks: list[dict[str, Any]] = []
    for number, data in enumerate(events[:-1], start=1):
        if data == "[DONE]":
            raise AssertionError(f"SSE event #{number}: [DONE] is followed by more events")
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(
                f"SSE event #{number}: data is not JSON ({exc}): {data!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise AssertionError(f"SSE event #{number}: data is not a JSON object: {data!r}")
        schema = "ErrorResponse" if "error" in chunk else "CreateChatCompletionStreamResponse"
        try:
            validate_openai(schema, chunk)
        except AssertionError as exc:
            raise AssertionError(f"SSE event #{number}: {exc}") from None
        chunks.append(chunk)
    return chunks
