"""Embeddings pass through to OpenAI-format upstreams, with usage recorded (and images from an
OpenAI-compatible server, which shares this module's gateway)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from conftest import (
    UPSTREAM_KEY,
    BackgroundLoop,
    RunningGateway,
    start_gateway,
    upstream_settings,
)
from contracts import validate_openai

from crossway.testing import SimulatedUpstream
from crossway.testing.media import PNG


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


@pytest.fixture(scope="module")
def openai_format_vendors(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> Iterator[RunningGateway]:
    """Mistral, an Azure deployment and an OpenAI-compatible server (vLLM, Ollama…)."""
    base = upstream.base_url
    providers = {
        "mistral": {"type": "mistral", "api_key": UPSTREAM_KEY, "base_url": f"{base}/mistral/v1"},
        "az": {
            "type": "azure",
            "api_key": UPSTREAM_KEY,
            "base_url": f"{base}/azure",
            "api_version": "2024-10-21",
            "models": {"text-embedding-3-small": "embed-prod"},
        },
        "local": {
            "type": "openai-compatible",
            "base_url": f"{base}/local/v1",
            "models": ["nomic-embed-text", "flux-schnell"],
        },
    }
    gw = start_gateway(background, upstream_settings(base, providers=providers, models={}))
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("mistral-embed", "/mistral/v1/embeddings"),
        ("text-embedding-3-small", "/azure/openai/deployments/embed-prod/embeddings"),
        ("nomic-embed-text", "/local/v1/embeddings"),
    ],
)
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_on_every_openai_format_vendor(
    openai_format_vendors: RunningGateway,
    upstream: SimulatedUpstream,
    model: str,
    path: str,
    encoding: str,
) -> None:
    """float asked for; base64 is what the SDK asks for by default, decoding it itself."""
    client = openai_format_vendors.client()
    asked: dict[str, str] = {"encoding_format": "float"} if encoding == "float" else {}
    raw = client.embeddings.with_raw_response.create(
        model=model,
        input=["first", "second"],
        **asked,
    )
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    assert all(isinstance(x, float) for d in result.data for x in d.embedding[:3])
    sent = upstream.requests[-1]
    assert sent.path == path and sent.body["encoding_format"] == encoding
    event = openai_format_vendors.event(raw.headers["x-request-id"])
    assert event.usage is not None and event.usage.prompt_tokens == result.usage.prompt_tokens


def test_images_from_an_openai_compatible_server(
    openai_format_vendors: RunningGateway, upstream: SimulatedUpstream
) -> None:
    client = openai_format_vendors.client()
    made = client.images.generate(model="flux-schnell", prompt="a fox", response_format="b64_json")
    assert base64.b64decode((made.data or [])[0].b64_json or "") == PNG
    assert upstream.requests[-1].path == "/local/v1/images/generations"
