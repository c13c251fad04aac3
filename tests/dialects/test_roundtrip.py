"""Property tests: random canonical conversations survive encode → decode in each dialect.

Each dialect has a subset of the canonical model it can express (OpenAI has no signed
reasoning; Anthropic has no seed); the strategies draw from that subset, and the round trip
must give back exactly what went in. A third test sends the shared subset through both
dialects in turn.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossway.dialects.gemini.requests import SKIP_SIGNATURE
from crossway.dialects.openai.requests import UpstreamOptions
from crossway.dialects.registry import ANTHROPIC, GEMINI, OPENAI, Dialect
from crossway.ir.chat import (
    ChatRequest,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)

words = st.text(alphabet="abcdefghij klmnop,.?!é中", min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and s != ""
)
ids = st.text(alphabet="abcdefXYZ0123456789_-", min_size=4, max_size=12).map(lambda s: "call_" + s)
names = st.text(alphabet="abcdefghijklmnop_", min_size=1, max_size=12)
b64 = st.binary(min_size=1, max_size=12).map(lambda b: __import__("base64").b64encode(b).decode())
json_args = st.dictionaries(names, st.integers(-(2**53), 2**53) | words, max_size=3).map(
    lambda d: orjson.dumps(d).decode()
)
images = st.one_of(
    st.builds(Image, url=st.just("https://example.com/a.png")),
    st.builds(Image, data=b64, media_type=st.sampled_from(["image/png", "image/jpeg"])),
)
# OpenAI names a file; Anthropic titles a document (each carries the other's as its own)
openai_documents = st.builds(Document, data=b64, filename=st.just("report.pdf"))
anthropic_documents = st.builds(Document, data=b64, title=words)


gemini_documents = st.builds(Document, data=b64)
gemini_images = st.one_of(
    st.builds(Image, url=st.just("https://example.com/a.png"), media_type=st.just("image/png")),
    st.builds(Image, data=b64, media_type=st.sampled_from(["image/png", "image/jpeg"])),
)


@st.composite
def conversations(draw: st.DrawFn, signed_reasoning: bool, gemini: bool = False) -> list[Message]:
    """Alternating turns starting with the user; tool results answer the calls before them."""
    messages: list[Message] = []
    pending: list[str] = []
    for turn in range(draw(st.integers(1, 3))):
        user: list[Part] = [ToolResult(c, [Text(draw(words))]) for c in pending]
        documents = anthropic_documents if signed_reasoning else openai_documents
        media = images
        if gemini:
            documents, media = gemini_documents, gemini_images
        user += draw(st.lists(st.one_of(words.map(Text), media, documents), max_size=3))
        if not user:
            user = [Text(draw(words))]
        messages.append(Message("user", user))
        if turn == 2:
            break
        assistant: list[Part] = []
        if signed_reasoning and draw(st.booleans()):
            assistant.append(Reasoning(draw(words), signature=draw(b64)))
        if draw(st.booleans()):
            assistant.append(Text(draw(words)))
        calls = draw(st.lists(st.builds(ToolCall, ids, names, json_args), max_size=2,
                              unique_by=lambda c: c.id))  # fmt: skip
        for call in calls:  # ids are unique in a conversation, as every API makes them
            call.id = f"{call.id}t{turn}"
        assistant.extend(calls)
        if not any(isinstance(p, Text | ToolCall) for p in assistant):
            assistant.append(Text(draw(words)))
        messages.append(Message("assistant", assistant))
        pending = [c.id for c in calls]
    return messages


tools = st.lists(
    st.builds(
        Tool,
        name=names,
        description=st.none() | words,
        parameters=st.just({"type": "object", "properties": {"x": {"type": "string"}}}),
    ),
    max_size=2,
    unique_by=lambda t: t.name,
)


@st.composite
def requests(draw: st.DrawFn, dialect: Dialect) -> ChatRequest:
    anthropic, gemini = dialect is ANTHROPIC, dialect is GEMINI
    req = ChatRequest(messages=draw(conversations(signed_reasoning=anthropic, gemini=gemini)))
    if draw(st.booleans()):
        req.system = [Text(draw(words))]
    req.max_tokens = (
        draw(st.integers(1, 8000)) if anthropic else draw(st.none() | st.integers(1, 8000))
    )
    req.temperature = draw(st.none() | st.sampled_from([0.0, 0.5, 1.0]))
    req.stop = draw(st.lists(words, max_size=2))
    req.tools = draw(tools)
    if req.tools and draw(st.booleans()):
        mode = draw(st.sampled_from(["auto", "none", "required", "tool"]))
        req.tool_choice = ToolChoice(mode, req.tools[0].name if mode == "tool" else None)
    if (
        not gemini  # Gemini has no switch for parallel calls
        and req.tools
        and draw(st.booleans())
        and not (req.tool_choice and req.tool_choice.mode == "none")
    ):
        req.parallel_tool_calls = False
        if anthropic and req.tool_choice is None:  # Anthropic says it on an explicit `auto`
            req.tool_choice = ToolChoice("auto")
    if draw(st.booleans()) and not (gemini and req.tools):  # Gemini: not with tools
        name = None if anthropic or gemini else "response"
        req.response_format = ResponseFormat("json_schema", {"type": "object"}, name)
    if not anthropic:
        req.seed = draw(st.none() | st.integers(0, 100))
    if not gemini:  # no end-user field in Gemini's API
        req.user = draw(st.none() | st.just("user-1"))
    return req


def roundtrip(dialect: Dialect, req: ChatRequest) -> ChatRequest:
    body: dict[str, Any] = dialect.encode_request(req, "m", UpstreamOptions())
    back = dialect.decode_request(orjson.loads(orjson.dumps(body)))  # through real JSON
    back.model, back.dialect, back.extra = req.model, req.dialect, req.extra
    return back


_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(requests(OPENAI))
def test_openai_roundtrip(req: ChatRequest) -> None:
    assert roundtrip(OPENAI, req) == req


@_FAST
@given(requests(ANTHROPIC))
def test_anthropic_roundtrip(req: ChatRequest) -> None:
    assert roundtrip(ANTHROPIC, req) == req


@_FAST
@given(requests(ANTHROPIC))
def test_through_both_dialects_keeps_the_conversation(req: ChatRequest) -> None:
    """Anthropic → canonical → OpenAI → canonical → Anthropic loses only what OpenAI lacks."""
    for message in req.messages:  # OpenAI has no signed reasoning to carry
        message.parts = [p for p in message.parts if not isinstance(p, Reasoning)]
    via_openai = roundtrip(OPENAI, req)
    assert roundtrip(ANTHROPIC, via_openai) == req


def _calls_numbered(req: ChatRequest) -> ChatRequest:
    """Gemini's calls carry no ids (they are made up again on the way back) and the first
    call of a turn gets Google's stand-in signature: number the ids, drop the stand-ins."""
    ids: dict[str, str] = {}
    for message in req.messages:
        for part in message.parts:
            if isinstance(part, ToolCall):
                part.id = ids.setdefault(part.id, f"c{len(ids)}")
                if part.signature == SKIP_SIGNATURE:
                    part.signature = None
            elif isinstance(part, ToolResult):
                part.call_id = ids.setdefault(part.call_id, f"c{len(ids)}")
    return req


@_FAST
@given(requests(GEMINI))
def test_gemini_roundtrip(req: ChatRequest) -> None:
    assert _calls_numbered(roundtrip(GEMINI, req)) == _calls_numbered(req)
