"""GET /v1/models and /v1/models/{id} with the catalog's facts and filters."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from conftest import MASTER_KEY, RunningGateway
from contracts import validate_openai


def get(gateway: RunningGateway, path: str) -> httpx.Response:
    with httpx.Client() as http:
        return http.get(gateway.base_url + path, headers={"authorization": f"Bearer {MASTER_KEY}"})


def ids(resp: httpx.Response) -> set[str]:
    return {m["id"] for m in resp.json()["data"]}


def test_sdk_lists_what_the_caller_can_use(gateway: RunningGateway, client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    # served: catalog models of configured vendors, config models, local models
    assert {
        "gpt-4o",
        "gpt-4o-mini",
        "deepseek-chat",
        "grok-3",
        "balanced",
        "llama-3.1-8b-instruct",
        "doubao-seed-1-6",
    } <= set(models)
    assert "claude-sonnet-4-6" in models  # the Anthropic provider's catalog models
    assert "gemini-2.5-flash" in models and "gemini-on-vertex" in models
    gpt4o: Any = models["gpt-4o"]
    assert gpt4o.owned_by == "openai" and gpt4o.created > 1_600_000_000
    assert gpt4o.context_length == 128000
    assert gpt4o.providers == ["azure-eu", "openai"]
    assert float(gpt4o.pricing["prompt"]) == pytest.approx(2.5e-6)
    assert float(gpt4o.pricing["completion"]) == pytest.approx(10e-6)
    assert "image" in gpt4o.architecture["input_modalities"]
    validate_openai("ListModelsResponse", get(gateway, "/models").json())


def test_filters(gateway: RunningGateway) -> None:
    everything = ids(get(gateway, "/models"))
    tools = ids(get(gateway, "/models?supported_parameters=tools"))
    vision = ids(get(gateway, "/models?supported_parameters=tools,vision"))
    images_in = ids(get(gateway, "/models?input_modalities=image"))
    embeddings = ids(get(gateway, "/models?output_modalities=embeddings"))
    assert vision and vision < tools < everything
    assert vision <= images_in
    assert "gpt-4o" in vision and "deepseek-chat" not in vision and "deepseek-chat" in tools
    assert "text-embedding-3-small" in embeddings and "gpt-4o" not in embeddings
    assert ids(get(gateway, "/models?output_modalities=all")) == everything
    # a model the catalog does not know has no capabilities to match
    assert "balanced" in everything and "balanced" not in tools


def test_bad_filter_value_is_400(gateway: RunningGateway) -> None:
    resp = get(gateway, "/models?output_modalities=smell")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "output_modalities" and "smell" in error["message"]


@pytest.mark.parametrize(
    ("path", "model_id"),
    [
        ("/models/gpt-4o", "gpt-4o"),
        ("/models/openai/gpt-4o", "gpt-4o"),
        ("/models/fast", "gpt-4o-mini"),
        ("/models/team-default", "balanced"),
        ("/models/meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
    ],
)
def test_retrieve(gateway: RunningGateway, path: str, model_id: str) -> None:
    resp = get(gateway, path)
    assert resp.status_code == 200
    assert resp.json()["id"] == model_id
    validate_openai("Model", resp.json())


def test_retrieve_unknown_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.models.retrieve("no-such-model")


def test_models_need_a_key(gateway: RunningGateway) -> None:
    with httpx.Client() as http:
        assert http.get(gateway.base_url + "/models").status_code == 401


def test_health_needs_no_key(gateway: RunningGateway) -> None:
    with httpx.Client() as http:
        assert http.get(gateway.root + "/health/live").json() == {"status": "ok"}
        ready = http.get(gateway.root + "/health/ready")
        assert ready.status_code == 200 and ready.json()["models"] > 10
