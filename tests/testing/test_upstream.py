"""The simulated upstream itself: deterministic answers and faults on request."""

from __future__ import annotations

import base64
import struct

import openai

from crossway.testing import SimulatedUpstream

KEY = "sk-upstream-secret-123"


def direct(upstream: SimulatedUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url + "/v1", api_key=KEY, max_retries=0)


def test_answers_are_deterministic(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    messages = [{"role": "user", "content": "same question"}]
    a = client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert a.id == b.id and a.choices[0].message.content == b.choices[0].message.content
    assert a.usage == b.usage


def test_chunk_count_is_exact(upstream: SimulatedUpstream) -> None:
    stream = direct(upstream).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        stream=True,  # type: ignore[arg-type]
        extra_body={"simulate": {"chunks": 20}},
    )
    contents = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(contents) == 20


def test_wrong_key_is_refused(upstream: SimulatedUpstream) -> None:
    bad = openai.OpenAI(base_url=upstream.base_url + "/v1", api_key="nope", max_retries=0)
    try:
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    except openai.AuthenticationError:
        return
    raise AssertionError("expected a 401")


def test_embeddings_in_both_encodings(upstream: SimulatedUpstream) -> None:
    client = direct(upstream)
    floats = client.embeddings.create(
        model="e", input=["a", "b"], encoding_format="float", dimensions=8
    )
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    raw = client.embeddings.with_raw_response.create(
        model="e", input="a", dimensions=8, encoding_format="base64"
    )
    packed = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(packed))
    assert decoded == __import__("pytest").approx(floats.data[0].embedding, rel=1e-6)
