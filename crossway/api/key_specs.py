"""What an operator may say about a key, checked field by field (admin API and CLI alike)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossway.errors import InvalidRequest

_GLOB = re.compile(r"^[A-Za-z0-9._:/@*?\[\]!-]{1,200}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:/-]{0,199}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    daily: float | None = Field(None, ge=0)
    monthly: float | None = Field(None, ge=0)
    total: float | None = Field(None, ge=0)


class Limits(_Strict):
    rpm: int | None = Field(None, ge=1, le=2**62)
    tpm: int | None = Field(None, ge=1, le=2**62)
    max_concurrency: int | None = Field(None, ge=1, le=2**62)


class KeyChange(_Strict):
    """A PATCH: only the fields given change."""

    name: str | None = None
    owner: str | None = None
    models: list[str] | None = None
    vendors: list[str] | None = None
    budget: Budget | None = None
    limits: Limits | None = None
    expires_at: dt.datetime | None = None
    metadata: dict[str, Any] | None = None
    enabled: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(
                "use 1-200 letters, digits, spaces and . _ @ : / -, starting with a letter or digit"
            )
        return value

    @field_validator("models")
    @classmethod
    def _globs(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or []:
            if not _GLOB.match(pattern):
                raise ValueError(
                    f"{pattern!r} is not a model pattern (letters, digits, "
                    ". _ : / @ - and the wildcards * ? [ ])"
                )
            if pattern.count("[") != pattern.count("]"):
                raise ValueError(f"{pattern!r} has an unclosed [")
            re.compile(fnmatch.translate(pattern))
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def columns(self) -> dict[str, Any]:
        """The store's columns for the fields that were given."""
        given = self.model_fields_set
        out: dict[str, Any] = {}
        for name in ("name", "owner", "models", "vendors", "expires_at", "enabled"):
            if name in given:
                out[name] = getattr(self, name)
        if "metadata" in given:
            out["meta"] = self.metadata or {}
        if "budget" in given:
            budget = self.budget or Budget()
            for period in budget.model_fields_set or ("daily", "monthly", "total"):
                out[f"budget_{period}"] = getattr(budget, period)
        if "limits" in given:
            limits = self.limits or Limits()
            for limit in limits.model_fields_set or ("rpm", "tpm", "max_concurrency"):
                out[limit] = getattr(limits, limit)
        for nullable_list in ("models", "vendors"):
            if nullable_list in out and out[nullable_list] is None:
                out[nullable_list] = []
        return out


T = TypeVar("T", bound="KeyChange")


class KeyCreate(KeyChange):
    name: str

    def columns(self) -> dict[str, Any]:
        out = super().columns()
        out.setdefault("models", [])
        out.setdefault("vendors", [])
        out.setdefault("meta", {})
        out.setdefault("enabled", True)
        return out


def parse(model: type[T], data: Any, vendors: Iterable[str]) -> T:
    """Validate, or a 400 naming the first field at fault."""
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", retryable=False)
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        reason = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InvalidRequest(
            f"{field}: {reason}" if field else reason,
            param=field,
            code="invalid_field",
            retryable=False,
        ) from None
    known = set(vendors)
    for i, vendor in enumerate(spec.vendors or []):
        if vendor not in known:
            raise InvalidRequest(
                f"vendors[{i}]: unknown vendor {vendor!r}; known: " + ", ".join(sorted(known)),
                param=f"vendors[{i}]",
                code="invalid_field",
                retryable=False,
            )
    return spec
