"""GET /v1/models and /v1/models/{id}: what the caller can use, with catalog facts and filters.

Objects follow OpenAI's model shape (`id`, `object`, `created`, `owned_by`) extended with
OpenRouter's fields (`context_length`, `architecture`, `pricing` in USD per token as strings,
`supported_parameters`) and Crossway's own (`providers`, `aliases`).
"""

from __future__ import annotations

from typing import Any

import orjson

from crossway.api.http import Request
from crossway.api.services import Services
from crossway.errors import InvalidRequest, NotFound

INPUT_MODALITIES = frozenset({"text", "image", "file", "audio", "video"})
OUTPUT_MODALITIES = frozenset({"text", "image", "audio", "embeddings"})


def model_object(services: Services, model_id: str) -> dict[str, Any]:
    info = services.catalog.get(model_id)
    deployments = services.table.deployments[model_id]
    aliases = sorted(a for a, t in services.table.aliases.items() if t == model_id)
    obj: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": info.created if info else 0,
        "owned_by": info.owned_by if info else deployments[0].provider.vendor,
        "name": info.name if info else model_id,
        "providers": sorted({d.provider.name for d in deployments}),
        "aliases": aliases,
    }
    if info is not None:
        obj.update(
            {
                "context_length": info.context_length,
                "max_output_tokens": info.max_output_tokens,
                "architecture": {
                    "modality": "+".join(info.input_modalities)
                    + "->"
                    + "+".join(info.output_modalities),
                    "input_modalities": list(info.input_modalities),
                    "output_modalities": list(info.output_modalities),
                },
                "pricing": info.pricing.per_token(),
                "supported_parameters": list(info.supported_parameters),
            }
        )
    return obj


def _csv(req: Request, name: str, allowed: frozenset[str] | None = None) -> list[str]:
    raw = req.query.get(name)
    if raw is None:
        return []
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in values if v not in allowed and v != "all"]
        if bad:
            raise InvalidRequest(
                f"unknown value {bad[0]!r} for '{name}'; allowed: "
                + ", ".join(sorted(allowed))
                + ", all",
                param=name,
                retryable=False,
            )
    return values


def _matches(obj: dict[str, Any], params: list[str], inputs: list[str], outputs: list[str]) -> bool:
    arch = obj.get("architecture") or {}
    have_in = set(arch.get("input_modalities") or ("text",))
    have_out = set(arch.get("output_modalities") or ("text",))
    supported = set(obj.get("supported_parameters") or ())
    for param in params:
        # 'vision' is a capability, not a parameter: image input
        if param == "vision" and "image" in have_in:
            continue
        if param not in supported:
            return False
    if inputs and "all" not in inputs and not set(inputs) <= have_in:
        return False
    return not (outputs and "all" not in outputs and not set(outputs) & have_out)


async def list_models(req: Request) -> None:
    services = req.services
    params = _csv(req, "supported_parameters")
    inputs = _csv(req, "input_modalities", INPUT_MODALITIES)
    outputs = _csv(req, "output_modalities", OUTPUT_MODALITIES)
    data = [
        obj
        for obj in (model_object(services, m) for m in sorted(services.table.deployments))
        if _matches(obj, params, inputs, outputs)
    ]
    await req.respond(200, orjson.dumps({"object": "list", "data": data}))


async def get_model(req: Request) -> None:
    services = req.services
    requested = req.path[len("/v1/models/") :]
    model_id = services.table.canonical(requested)
    if model_id is None and "/" in requested:
        prefix, rest = requested.split("/", 1)
        if prefix in services.router.pins:
            model_id = services.table.canonical(rest)
    if model_id is None:
        raise NotFound(
            f"model {requested!r} is not served here; GET /v1/models lists them",
            param="model",
            code="model_not_found",
            retryable=False,
        )
    await req.respond(200, orjson.dumps(model_object(services, model_id)))
