"""Embeddings pass through to OpenAI-format upstreams, with usage recorded."""

from __future__ import annotations

from conftest import RunningGateway
from contracts import validate_openai

from crossway.testing import SimulatedUpstream


def test_embeddings_through_the_sdk(gateway: RunningGateway, upstream: SimulatedUpstream) -> None:
    client = gateway.client()
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["one", "two", "three"], dimensions=16
    )
    result = raw.parse()  # the SDK asked for base64 and decoded it
    assert [len(d.embedding) for d in result.data] == [16, 16, 16]
    assert upstream.requests[-1].body["encoding_format"] == "base64"
    assert upstream.requests[-1].path == "/v1/embeddings"
    validate_openai("CreateEmbeddingRequest", upstream.requests[-1].body)
    validate_openai("CreateEmbeddingResponse", raw.http_response.json())
    event = gateway.event(raw.headers["x-request-id"])
    assert event.endpoint == "embeddings" and event.usage is not None
    assert event.usage.prompt_tokens == result.usage.prompt_tokens
    assert event.cost_usd is not None and event.cost_usd > 0


def test_embeddings_without_input_is_400(gateway: RunningGateway) -> None:
    import httpx
    from conftest import MASTER_KEY

    resp = httpx.post(
        gateway.base_url + "/embeddings",
        json={"model": "text-embedding-3-small"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input"
