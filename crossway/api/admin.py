"""The admin API (master key only): virtual keys, usage, one request's record; and /v1/key.

POST   /admin/keys                  create; the secret is in the answer, once
GET    /admin/keys                  list
GET    /admin/keys/{id or name}     show, with live spend
PATCH  /admin/keys/{id}             change (enabled: false disables)
POST   /admin/keys/{id}/rotate      a new secret, same key
DELETE /admin/keys/{id}             delete
GET    /admin/usage                 ?key=&model=&vendor=&since=&until=&group_by=day|model|key|vendor
GET    /admin/requests/{request_id} one request's ledger record
GET    /v1/key                      the caller's own key: limits, spend, what remains
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson

from crossway.api.http import Request
from crossway.api.key_specs import KeyChange, KeyCreate, parse
from crossway.api.openai import parse_object
from crossway.api.routes import Route
from crossway.errors import InvalidRequest, NotFound, PermissionDenied
from crossway.limits.base import next_reset
from crossway.store.keys import ApiKey, DuplicateName
from crossway.store.ledger import GROUPS

KEYS = "/admin/keys"


def require_master(req: Request) -> None:
    if req.principal is None or not req.principal.is_master:
        raise PermissionDenied(
            "the admin API needs the master key", code="master_key_required", retryable=False
        )


async def _json(req: Request, status: int, data: Any) -> None:
    await req.respond(status, orjson.dumps(data))


async def _key_view(req: Request, key: ApiKey) -> dict[str, Any]:
    view = key.public()
    now_ms = int(time.time() * 1000)
    try:
        spend = await req.services.limits.limiter.spend(key.id, now_ms)
    except Exception:  # the limiter's Redis is down: show the key without live spend
        view["spend"] = None
        return view
    view["spend"] = {}
    for period, limit, spent in (
        ("daily", key.budget_daily, spend.daily),
        ("monthly", key.budget_monthly, spend.monthly),
        ("total", key.budget_total, spend.total),
    ):
        reset = next_reset(now_ms, period)
        view["spend"][period] = {
            "spent": round(spent, 10),
            "limit": limit,
            "remaining": None if limit is None else round(max(limit - spent, 0.0), 10),
            "resets_at": reset.isoformat().replace("+00:00", "Z") if reset else None,
        }
    return view


def _key_id(req: Request) -> tuple[str, str]:
    """`/admin/keys/{id}` or `/admin/keys/{id}/rotate` -> (id, action)."""
    rest = req.path[len(KEYS) + 1 :].strip("/")
    ident, _, action = rest.partition("/")
    return ident, action


async def _find(req: Request, ident: str) -> ApiKey:
    key = await req.services.key_store.get(ident)
    if key is None:
        raise NotFound(f"no key {ident!r}", code="key_not_found", retryable=False)
    return key


def _name_taken(name: str | None) -> InvalidRequest:
    return InvalidRequest(
        f"name: a key named {name!r} exists already",
        param="name",
        code="duplicate_name",
        retryable=False,
    )


async def create_key(req: Request) -> None:
    require_master(req)
    services = req.services
    spec = parse(KeyCreate, parse_object(await req.body(1 << 20)), services.router.pins)
    try:
        key, secret = await services.key_store.create(**spec.columns())
    except DuplicateName:
        raise _name_taken(spec.name) from None
    services.keys.put(key)
    await _json(req, 201, {"key": secret, **await _key_view(req, key)})


async def list_keys(req: Request) -> None:
    require_master(req)
    keys = await req.services.key_store.list()
    await _json(req, 200, {"object": "list", "data": [k.public() for k in keys]})


async def show_key(req: Request) -> None:
    require_master(req)
    ident, action = _key_id(req)
    if action:
        raise NotFound(f"no such endpoint: GET {req.path}", code="unknown_url")
    await _json(req, 200, await _key_view(req, await _find(req, ident)))


async def change_key(req: Request) -> None:
    require_master(req)
    services = req.services
    ident, _ = _key_id(req)
    key = await _find(req, ident)
    spec = parse(KeyChange, parse_object(await req.body(1 << 20)), services.router.pins)
    if "name" in spec.model_fields_set and spec.name is None:
        raise InvalidRequest("name: a key must have a name", param="name", retryable=False)
    try:
        changed = await services.key_store.update(key.id, **spec.columns())
    except DuplicateName:
        raise _name_taken(spec.name) from None
    assert changed is not None
    services.keys.put(changed)
    await _json(req, 200, await _key_view(req, changed))


async def rotate_key(req: Request) -> None:
    require_master(req)
    ident, action = _key_id(req)
    if action != "rotate":
        raise NotFound(f"no such endpoint: POST {req.path}", code="unknown_url")
    key = await _find(req, ident)
    rotated = await req.services.key_store.rotate(key.id)
    assert rotated is not None
    new_key, secret = rotated
    req.services.keys.put(new_key)
    await _json(req, 200, {"key": secret, **await _key_view(req, new_key)})


async def delete_key(req: Request) -> None:
    require_master(req)
    ident, _ = _key_id(req)
    key = await _find(req, ident)
    await req.services.key_store.delete(key.id)
    req.services.keys.drop(key.id)
    await _json(req, 200, {"id": key.id, "deleted": True})


def _time(req: Request, name: str) -> dt.datetime | None:
    raw = req.query.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name}: not an ISO 8601 time: {raw!r}", param=name, retryable=False
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def usage_report(req: Request) -> None:
    require_master(req)
    group_by = req.query.get("group_by") or None
    if group_by is not None and group_by not in GROUPS:
        raise InvalidRequest(
            f"group_by: one of {', '.join(GROUPS)}", param="group_by", retryable=False
        )
    q = req.query
    rows = await req.services.ledger.summary(
        key_id=q.get("key") or None,
        model=q.get("model") or None,
        vendor=q.get("vendor") or None,
        since=_time(req, "since"),
        until=_time(req, "until"),
        group_by=group_by,
    )
    await _json(req, 200, {"object": "list", "group_by": group_by, "data": rows})


async def request_record(req: Request) -> None:
    require_master(req)
    request_id = req.path[len("/admin/requests/") :]
    record = await req.services.ledger.request(request_id)
    if record is None:
        raise NotFound(
            f"no record of request {request_id!r} (records are written within a "
            "second of the answer)",
            code="request_not_found",
            retryable=False,
        )
    await _json(req, 200, record)


async def own_key(req: Request) -> None:
    principal = req.principal
    assert principal is not None
    if principal.key is None:
        await _json(
            req,
            200,
            {
                "id": principal.id,
                "name": principal.name,
                "is_master": principal.is_master,
                "limits": None,
            },
        )
        return
    await _json(req, 200, await _key_view(req, principal.key))


ROUTES = [
    Route("POST", KEYS, create_key),
    Route("GET", KEYS, list_keys),
    Route("GET", KEYS + "/", show_key),
    Route("PATCH", KEYS + "/", change_key),
    Route("POST", KEYS + "/", rotate_key),
    Route("DELETE", KEYS + "/", delete_key),
    Route("GET", "/admin/usage", usage_report),
    Route("GET", "/admin/requests/", request_record),
]

# a caller's own key: beside the OpenAI-compatible paths, not under /admin
KEY_ROUTES = [Route("GET", "/v1/key", own_key)]
