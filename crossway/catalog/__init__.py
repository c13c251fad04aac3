"""The model catalog: what each model can do and what it costs, shipped as `models.yaml`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crossway.ir import Usage

CATALOG_FILE = Path(__file__).with_name("models.yaml")
_PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per 1M tokens, except `image` (per image), `per_second` (of audio heard) and
    `per_character` (of text spoken)."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    image: float | None = None
    audio_input: float | None = None
    audio_output: float | None = None
    per_second: float | None = None
    per_character: float | None = None

    def cost(self, usage: Usage) -> float:
        """Tokens at their prices; an answer that reported no tokens (DALL-E, Whisper, TTS)
        is billed by its units instead, so a model priced both ways is never billed twice."""
        if not (usage.prompt_tokens or usage.completion_tokens):
            return (
                usage.images * (self.image or 0.0)
                + usage.characters * (self.per_character or 0.0)
                + usage.audio_seconds * (self.per_second or 0.0)
            )
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        cached_price = self.cached_input if self.cached_input is not None else self.input
        write_price = self.cache_write if self.cache_write is not None else self.input
        return (
            (usage.prompt_tokens - cached - written) * self.input
            + cached * cached_price
            + written * write_price
            + usage.completion_tokens * self.output
        ) / _PER_MILLION

    def per_token(self) -> dict[str, str]:
        """OpenRouter's shape: decimal strings, USD per token (per unit for the others)."""
        out = {
            "prompt": _dec(self.input / _PER_MILLION),
            "completion": _dec(self.output / _PER_MILLION),
        }
        if self.cached_input is not None:
            out["input_cache_read"] = _dec(self.cached_input / _PER_MILLION)
        if self.cache_write is not None:
            out["input_cache_write"] = _dec(self.cache_write / _PER_MILLION)
        if self.image is not None:
            out["image"] = _dec(self.image)
        if self.audio_input is not None:
            out["audio"] = _dec(self.audio_input / _PER_MILLION)
        return out


def _dec(value: float) -> str:
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str
    owned_by: str
    created: int  # unix time of the release date
    vendors: dict[str, str]
    context_length: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    supported_parameters: tuple[str, ...] = ()
    pricing: Pricing = field(default_factory=Pricing)
    aliases: tuple[str, ...] = ()


def _epoch(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, str):
        return _epoch(dt.date.fromisoformat(value))
    return int(value or 0)


def _model(raw: dict[str, Any]) -> ModelInfo:
    return ModelInfo(
        id=raw["id"],
        name=raw.get("name", raw["id"]),
        owned_by=raw.get("owned_by", "unknown"),
        created=_epoch(raw.get("created")),
        vendors={k: (v or raw["id"]) for k, v in (raw.get("vendors") or {}).items()},
        context_length=raw.get("context_length"),
        max_output_tokens=raw.get("max_output_tokens"),
        input_modalities=tuple(raw.get("input_modalities") or ("text",)),
        output_modalities=tuple(raw.get("output_modalities") or ("text",)),
        supported_parameters=tuple(raw.get("supported_parameters") or ()),
        pricing=Pricing(**(raw.get("pricing") or {})),
        aliases=tuple(raw.get("aliases") or ()),
    )


class Catalog:
    def __init__(self, models: list[ModelInfo]) -> None:
        self.models: dict[str, ModelInfo] = {m.id: m for m in models}
        self._by_alias = {a: m for m in models for a in m.aliases}

    @classmethod
    def load(cls, path: Path = CATALOG_FILE) -> Catalog:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader)
        return cls([_model(raw) for raw in data.get("models", [])])

    def get(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id) or self._by_alias.get(model_id)

    def served_by(self, vendor: str) -> list[ModelInfo]:
        return [m for m in self.models.values() if vendor in m.vendors]
