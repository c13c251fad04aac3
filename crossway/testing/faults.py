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
                                                          (JSON-typed, also where audio was asked)
    {"simulate": {"no_usage": true}}                      no usage, even if asked

Uploads (transcriptions, translations) take `status` and `malformed`, from a `simulate` form
field or the `x-simulate` header.

Faults that change over time count the requests that name the same `fail_key` (the upstream
keeps the counts; `SimulatedUpstream.reset_counts()` forgets them):

    {"simulate": {"fail_first": 3, "fail_key": "k"}}      the first 3 fail (500), then normal
    {"simulate": {"flap": [2, 3], "fail_key": "k"}}       2 fail, 3 succeed, 2 fail, ...
    {"simulate": {..., "fail_status": 503}}               the status those failures answer

Faults work the same on Anthropic paths (`.../messages`, `.../messages/count_tokens`), in that
API's wire format: `status` answers `{"type":"error","error":{"type":...}}` (529 is
overloaded_error, see `crossway.testing.anthropic`), `error_after` sends an
`event: error` overloaded_error event, and `chunks`, `cut_after` and `error_after` count that
stream's events and text deltas. `no_usage` is OpenAI-only: Anthropic always reports usage.

On Gemini paths (`.../models/{model}:{action}`, see `crossway.testing.gemini`) the body's
`simulate` field is accepted next to the real fields. `status` answers
`{"error":{"code":N,"message":...,"status":"RESOURCE_EXHAUSTED"}}` (the google.rpc name of the
status), with `retry-after` and a RetryInfo detail when `retry_after` is set; `error_after` sends
`data: {"error":{"code":503,...,"status":"UNAVAILABLE"}}` (in a JSON-array stream, that object as
the last element); `chunks` counts text chunks, `cut_after` and `error_after` count stream chunks.
Gemini always reports usage.
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
    fail_first: int | None = None
    flap: list[int] | None = None
    fail_key: str = ""
    fail_status: int = 500

    def failing_now(self, counts: dict[str, int]) -> bool:
        """For the faults that change over time: does this request fail? (Counts it.)"""
        if self.fail_first is None and not self.flap:
            return False
        n = counts.get(self.fail_key, 0)
        counts[self.fail_key] = n + 1
        if self.fail_first is not None:
            return n < self.fail_first
        assert self.flap is not None
        failures, successes = self.flap[0], self.flap[1]
        return n % (failures + successes) < failures

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
