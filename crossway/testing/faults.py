"""Fault injection chosen per request.

A request asks for faults with a `simulate` object in its JSON body (Crossway passes unknown
fields through, so a client can reach the upstream's faults through the gateway) or an
`x-simulate` header holding the same JSON:

    {"simulate": {"status": 503, "retry_after": 2}}       an error answer
    {"simulate": {"latency_ms": 200}}                     wait before the headers
    {"simulate": {"ttfb_ms": 100, "chunk_delay_ms": 5}}   slow first byte, slow chunks
    {"simulate": {"chunks": 20}}                          this many content chunks
    {"simulate": {"cut_after": 3}}                        drop the connection after 3 chunks
    {"simulate": {"error_after": 3}}                      an in-stream error event after 3
    {"simulate": {"hang": true}}                          never answer
    {"simulate": {"malformed": true}}                     a 200 whose body is not JSON
    {"simulate": {"no_usage": true}}                      no usage, even if asked

Faults work the same on Anthropic paths (`.../messages`, `.../messages/count_tokens`), in that
API's wire format: `status` answers `{"type":"error","error":{"type":...}}` (529 is
overloaded_error, see `crossway.testing.anthropic`), `error_after` sends an
`event: error` overloaded_error event, and `chunks`, `cut_after` and `error_after` count that
stream's events and text deltas. `no_usage` is OpenAI-only: Anthropic always reports usage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import orjson


@dataclass(slots=True)
class Faults:
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    latency_ms: float = 0.0
    ttfb_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    chunks: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    hang: bool = False
    malformed: bool = False
    no_usage: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any] | None, header: str | None) -> Faults:
        spec: Any = None
        if header:
            try:
                spec = orjson.loads(header)
            except orjson.JSONDecodeError:
                spec = None
        if spec is None and body is not None:
            spec = body.get("simulate")
        if not isinstance(spec, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in spec.items() if k in known})
