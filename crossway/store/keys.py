"""Virtual API keys: created, listed, changed, rotated and deleted; only a hash is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from crossway.store.tables import api_keys

KEY_PREFIX = "sk-cw-"
SHOWN_PREFIX = 10  # characters of the secret kept to recognise a key in lists


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DuplicateName(Exception):
    """A key with that name exists already."""


@dataclass(slots=True)
class ApiKey:
    id: str
    name: str
    key_hash: str
    prefix: str
    owner: str | None = None
    models: list[str] = field(default_factory=list)  # glob patterns; empty: any model
    vendors: list[str] = field(default_factory=list)  # empty: any vendor
    budget_daily: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    expires_at: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    spend_total: float = 0.0
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)

    @property
    def expires_ts(self) -> float | None:
        """When it expires, in unix time; None if never."""
        return None if self.expires_at is None else _aware(self.expires_at).timestamp()

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the hash."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "owner": self.owner,
            "models": self.models,
            "vendors": self.vendors,
            "budget": {
                "daily": self.budget_daily,
                "monthly": self.budget_monthly,
                "total": self.budget_total,
            },
            "limits": {"rpm": self.rpm, "tpm": self.tpm, "max_concurrency": self.max_concurrency},
            "expires_at": _iso(self.expires_at),
            "metadata": self.meta,
            "enabled": self.enabled,
            "spend_total": round(self.spend_total, 10),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite gives naive datetimes back; everything stored is UTC
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return _aware(value).isoformat().replace("+00:00", "Z") if value is not None else None


_COLUMNS = [c.name for c in api_keys.columns]


def _from_row(row: Any) -> ApiKey:
    data = dict(row._mapping)
    for name in ("expires_at", "created_at", "updated_at"):
        if data[name] is not None:
            data[name] = _aware(data[name])
    return ApiKey(**data)


def _row(key: ApiKey) -> dict[str, Any]:
    return {name: getattr(key, name) for name in _COLUMNS}


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, **fields: Any) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is not kept anywhere."""
        secret = new_secret()
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            key_hash=hash_secret(secret),
            prefix=secret[:SHOWN_PREFIX],
            **fields,
        )
        try:
            async with self.engine.begin() as conn:
                await conn.execute(api_keys.insert().values(**_row(key)))
        except IntegrityError:
            raise DuplicateName(key.name) from None
        return key, secret

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(api_keys.select().order_by(api_keys.c.created_at))
            return [_from_row(r) for r in rows]

    async def get(self, id_or_name: str) -> ApiKey | None:
        query = api_keys.select().where(
            sa.or_(api_keys.c.id == id_or_name, api_keys.c.name == id_or_name)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _from_row(row) if row is not None else None

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(api_keys.select().where(api_keys.c.key_hash == key_hash))
            ).first()
        return _from_row(row) if row is not None else None

    async def update(self, key_id: str, **changes: Any) -> ApiKey | None:
        changes["updated_at"] = utcnow()
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(**changes)
                )
        except IntegrityError:
            raise DuplicateName(str(changes.get("name"))) from None
        return await self.get(key_id) if result.rowcount else None

    async def rotate(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A new secret for the same key (limits, spend and history stay)."""
        secret = new_secret()
        key = await self.update(key_id, key_hash=hash_secret(secret), prefix=secret[:SHOWN_PREFIX])
        return (key, secret) if key is not None else None

    async def delete(self, key_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(api_keys.delete().where(api_keys.c.id == key_id))
        return bool(result.rowcount)

    async def add_spend(self, amounts: dict[str, float]) -> None:
        """Atomic increments: concurrent writers never lose one."""
        if not amounts:
            return
        async with self.engine.begin() as conn:
            for key_id, amount in amounts.items():
                await conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == key_id)
                    .values(spend_total=api_keys.c.spend_total + amount)
                )
