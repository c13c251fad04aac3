"""Golden fixtures: a recorded input in one wire format and the exact output in another.

Each file in `golden/` names its kind (request, response or stream), the two dialects, and
holds `input` and `expected`. Anything a translation changes shows up as a diff here. After a
deliberate change, `CROSSWAY_REGEN_GOLDEN=1 pytest tests/dialects/test_golden.py` rewrites
`expected`; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from crossway.dialects.common import StreamOptions
from crossway.dialects.openai.requests import UpstreamOptions
from crossway.dialects.registry import DIALECTS
from crossway.dialects.translate import StreamTranslator

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
_CREATED = re.compile(rb'"created":\d+')


def translate(case: dict[str, Any]) -> Any:
    source, target = DIALECTS[case["from"]], DIALECTS[case["to"]]
    if case["kind"] == "request":
        canonical = source.decode_request(case["input"])
        return target.encode_request(canonical, case["model"], UpstreamOptions())
    if case["kind"] == "response":
        out = target.encode_response(source.decode_response(case["input"]), case["model"])
        out.pop("created", None)  # the only value that depends on the clock
        return out
    options = StreamOptions(case["include_usage"], case.get("json_array", False))
    translator = StreamTranslator(source, target, case["model"], options)
    raw = case["input"].encode()
    # fed in uneven slices of whole events, as a network would deliver them
    events = [e + b"\n\n" for e in raw.split(b"\n\n") if e.strip()]
    out = b"".join(translator.feed(b"".join(events[i : i + 3])) for i in range(0, len(events), 3))
    out += translator.end()
    return _CREATED.sub(b'"created":0', out).decode()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    got = translate(case)
    if os.environ.get("CROSSWAY_REGEN_GOLDEN"):
        case["expected"] = got
        path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
    assert "expected" in case, f"{path.name} has no expected output yet"
    assert got == case["expected"]


def test_there_are_goldens_for_every_direction_and_kind() -> None:
    seen = {
        (c["kind"], c["from"], c["to"]) for c in map(lambda p: json.loads(p.read_text()), CASES)
    }
    for kind in ("request", "response", "stream"):
        assert (kind, "openai", "anthropic") in seen
        assert (kind, "anthropic", "openai") in seen
        assert (kind, "openai", "gemini") in seen
        assert (kind, "gemini", "openai") in seen
        assert (kind, "gemini", "anthropic") in seen


def test_translated_output_parses() -> None:
    """Stream outputs are valid SSE with JSON data (a golden could record garbage)."""
    for path in CASES:
        case = json.loads(path.read_text())
        if case["kind"] != "stream":
            continue
        for block in case["expected"].split("\n\n"):
            for line in block.splitlines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    orjson.loads(line[6:])
        if case.get("json_array"):
            orjson.loads(case["expected"])  # one JSON array
