"""The shipped catalog: complete, consistent, priced."""

from __future__ import annotations

import pytest

from crossway.catalog import Catalog, Pricing
from crossway.ir import Usage
from crossway.providers import PROVIDER_TYPES

FAMILIES = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "o3",
    "o4-mini",
    "claude-sonnet-4",
    "claude-opus-4-1",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "deepseek-chat",
    "deepseek-reasoner",
    "grok-3",
    "doubao-seed-1-6",
    "kimi-k2",
    "mistral-large-latest",
    "text-embedding-3-small",
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("model_id", FAMILIES)
def test_required_families_are_listed_and_priced(catalog: Catalog, model_id: str) -> None:
    info = catalog.get(model_id)
    assert info is not None, model_id
    assert info.pricing.input > 0
    # every vendor the catalog names is registered, except Bedrock, which is still to come
    assert info.vendors and set(info.vendors) <= set(PROVIDER_TYPES) | {"aws"}
    if "text" in info.output_modalities:
        assert info.pricing.output > 0 and info.context_length and info.max_output_tokens


def test_entries_are_consistent(catalog: Catalog) -> None:
    ids = set(catalog.models)
    for info in catalog.models.values():
        assert not set(info.aliases) & ids, info.id
        assert set(info.input_modalities) <= {"text", "image", "file", "audio", "video"}
        assert set(info.output_modalities) <= {"text", "image", "audio", "embeddings"}
        assert info.created > 1_500_000_000, info.id


def test_cost_counts_cached_tokens_at_their_price() -> None:
    price = Pricing(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    assert price.cost(usage) == pytest.approx((600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6)
    assert Pricing(input=1, output=2).cost(usage) == pytest.approx((1000 + 200) / 1e6)


def test_media_units_are_billed_when_no_tokens_were_reported() -> None:
    price = Pricing(input=5.0, output=40.0, image=0.04, per_second=0.0001, per_character=0.00002)
    assert price.cost(Usage(images=3)) == pytest.approx(0.12)
    assert price.cost(Usage(audio_seconds=90.5)) == pytest.approx(0.00905)
    assert price.cost(Usage(characters=1000)) == pytest.approx(0.02)
    # a model that reported tokens (gpt-image-1) is billed by them, the images not again
    by_tokens = Usage(prompt_tokens=10, completion_tokens=1000, images=1)
    assert price.cost(by_tokens) == pytest.approx((10 * 5 + 1000 * 40) / 1e6)


def test_per_token_strings() -> None:
    assert Pricing(input=2.5, output=10).per_token() == {
        "prompt": "0.0000025",
        "completion": "0.00001",
    }
