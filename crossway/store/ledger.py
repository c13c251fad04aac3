"""The usage ledger: one row per request, written in batches, read in aggregates.

Writes are idempotent (a batch retried after a lost acknowledgement inserts nothing twice),
and a key's spend grows only by the rows a batch actually inserted, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crossway.store.keys import _iso
from crossway.store.tables import usage
from crossway.usage import UsageEvent

GROUPS = ("day", "model", "key", "vendor")
# what a summary row counts (integers), and all it holds after its group, in order
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "images", "characters")
SUMMARY_COLUMNS = (*_COUNTS, "audio_seconds", "cost_usd")

_COLUMNS = [c.name for c in usage.columns]
_KEY_ID, _COST = _COLUMNS.index("key_id"), _COLUMNS.index("cost_usd")
# Postgres gets the batch as the events themselves, serialised by orjson (dataclasses natively,
# several times faster than building rows) in one JSON document; the statement reads the
# columns out of it, inserts what is new, and adds the new rows' cost to each key's spend,
# all in one round trip with one prepared plan whatever the batch's size.
_EVENT_FIELDS = (
    "request_id text, started_at float8, principal text, endpoint text, stream bool, "
    "model_requested text, model text, upstream_model text, provider text, vendor text, "
    "status int8, error_type text, latency_ms float8, ttft_ms float8, usage json, "
    "cost_usd float8, upstream_request_id text, attempts int8"
)
_FROM_EVENT = {
    "created_at": "to_timestamp(started_at)",
    "key_id": "CASE WHEN left(principal, 4) = 'key_' THEN principal END",
    **{
        name: f"COALESCE((usage->>'{name}')::int8, 0)"
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "images",
            "characters",
        )
    },
    "audio_seconds": "COALESCE((usage->>'audio_seconds')::float8, 0)",
}
_PG_INSERT = (
    f"WITH inserted AS (INSERT INTO usage ({', '.join(_COLUMNS)}) SELECT "
    + ", ".join(_FROM_EVENT.get(name, name) for name in _COLUMNS)
    + f" FROM json_to_recordset(convert_from($1::bytea, 'UTF8')::json) AS e({_EVENT_FIELDS})"
    + " ON CONFLICT (request_id) DO NOTHING RETURNING key_id, cost_usd), "
    "spent AS (SELECT key_id, sum(cost_usd) AS cost FROM inserted"
    " WHERE key_id IS NOT NULL AND cost_usd > 0 GROUP BY key_id) "
    "UPDATE api_keys SET spend_total = api_keys.spend_total + spent.cost"
    " FROM spent WHERE api_keys.id = spent.key_id"
)
_SQLITE_INSERT = (
    f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _row(event: UsageEvent) -> dict[str, Any]:
    u = event.usage
    return {
        "request_id": event.request_id,
        "created_at": dt.datetime.fromtimestamp(event.started_at, dt.UTC),
        "key_id": event.principal if event.principal.startswith("key_") else None,
        "endpoint": event.endpoint,
        "model_requested": event.model_requested,
        "model": event.model,
        "upstream_model": event.upstream_model,
        "provider": event.provider,
        "vendor": event.vendor,
        "status": event.status,
        "error_type": event.error_type,
        "stream": event.stream,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "prompt_tokens": u.prompt_tokens if u else 0,
        "completion_tokens": u.completion_tokens if u else 0,
        "cached_tokens": u.cached_tokens if u else 0,
        "reasoning_tokens": u.reasoning_tokens if u else 0,
        "cost_usd": event.cost_usd,
        "attempts": event.attempts,
        "upstream_request_id": event.upstream_request_id,
        "images": u.images if u else 0,
        "characters": u.characters if u else 0,
        "audio_seconds": u.audio_seconds if u else 0.0,
    }


def _spend(inserted: Iterable[tuple[str | None, float | None]]) -> dict[str, float]:
    """Each key's cost among the rows a batch actually inserted."""
    spend: dict[str, float] = defaultdict(float)
    for key_id, cost in inserted:
        if key_id is not None and cost:
            spend[key_id] += cost
    return spend


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"the ledger runs on SQLite or Postgres, not {engine.dialect.name}")
        self.engine = engine
        # Postgres batches go over a connection of their own: a batch is one statement, so
        # the pool's checkout ping, BEGIN and COMMIT (most of the writer's CPU) are not needed
        self._pg: Any = None

    async def write(self, events: list[UsageEvent]) -> None:
        if self.engine.dialect.name == "postgresql":
            await self._write_postgres(events)
        else:
            await self._write_sqlite(events)

    async def _write_postgres(self, events: list[UsageEvent]) -> None:
        """One statement per batch (see `_PG_INSERT`), atomic by itself."""
        document = orjson.dumps(events)
        if self._pg is None or self._pg.is_closed():
            dsn = self.engine.url.set(drivername="postgresql")
            self._pg = await asyncpg.connect(
                dsn.render_as_string(hide_password=False), timeout=10, command_timeout=30
            )
        try:
            await self._pg.execute(_PG_INSERT, document)
        except BaseException:
            # a broken or timed-out connection is not used again; the recorder retries the
            # batch, and the statement inserts only what is not stored yet
            self._pg.terminate()
            self._pg = None
            raise

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    async def _write_sqlite(self, events: list[UsageEvent]) -> None:
        """Plain executemany on the driver: SQLAlchemy's per-row parameter work cost three
        times SQLite's own. Rows already stored (a retried batch) are left out first, so
        only new rows count towards spend."""
        ids = [e.request_id for e in events]
        async with self.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            db: Any = raw.driver_connection
            stored: set[str] = set()
            for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[start : start + 500]
                cursor = await db.execute(
                    f"SELECT request_id FROM usage WHERE request_id IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
                stored.update(row[0] for row in await cursor.fetchall())
            fresh = [e for e in events if e.request_id not in stored]
            rows = []
            for event in fresh:
                row = _row(event)
                row["created_at"] = row["created_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
                rows.append(tuple(row[name] for name in _COLUMNS))
            spend = _spend((row[_KEY_ID], row[_COST]) for row in rows)
            if rows:
                await db.executemany(_SQLITE_INSERT, rows)
            if spend:
                await db.executemany(
                    "UPDATE api_keys SET spend_total = spend_total + ? WHERE id = ?",
                    [(amount, key_id) for key_id, amount in spend.items()],
                )

    async def request(self, request_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(usage.select().where(usage.c.request_id == request_id))
            ).first()
        if row is None:
            return None
        data = {str(k): v for k, v in row._asdict().items()}
        data["created_at"] = _iso(data["created_at"])
        return data

    def _day(self) -> sa.ColumnElement[str]:
        if self.engine.dialect.name == "postgresql":
            return sa.func.to_char(sa.func.timezone("UTC", usage.c.created_at), "YYYY-MM-DD")
        return sa.func.strftime("%Y-%m-%d", usage.c.created_at)

    async def summary(
        self,
        *,
        key_id: str | None = None,
        model: str | None = None,
        vendor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        group_by: str | None = None,
    ) -> list[dict[str, Any]]:
        group = {
            "day": self._day(),
            "model": usage.c.model,
            "key": usage.c.key_id,
            "vendor": usage.c.vendor,
        }.get(group_by or "")
        columns: list[Any] = [
            sa.func.count().label("requests"),
            sa.func.sum(sa.case((usage.c.status >= 400, 1), else_=0)).label("errors"),
            sa.func.coalesce(sa.func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(usage.c.images), 0).label("images"),
            sa.func.coalesce(sa.func.sum(usage.c.characters), 0).label("characters"),
            sa.func.coalesce(sa.func.sum(usage.c.audio_seconds), 0.0).label("audio_seconds"),
            sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0).label("cost_usd"),
        ]
        if group is not None:
            columns.insert(0, group.label(group_by))
        query = sa.select(*columns)
        for column, value in (
            (usage.c.key_id, key_id),
            (usage.c.model, model),
            (usage.c.vendor, vendor),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(usage.c.created_at >= since)
        if until is not None:
            query = query.where(usage.c.created_at < until)
        if group is not None:
            query = query.group_by(group).order_by(group)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows:
            data = {str(k): v for k, v in row._asdict().items()}
            for name in _COUNTS:  # SUM comes back as Decimal or None on some databases
                data[name] = int(data[name] or 0)
            data["audio_seconds"] = float(data["audio_seconds"] or 0.0)
            data["cost_usd"] = float(data["cost_usd"] or 0.0)
            out.append(data)
        return out

    async def spend_since(self, since: dt.datetime) -> dict[str, float]:
        """Each key's spend from `since` on, to seed the limiter's budget counters."""
        query = (
            sa.select(usage.c.key_id, sa.func.sum(usage.c.cost_usd))
            .where(usage.c.created_at >= since, usage.c.key_id.is_not(None))
            .group_by(usage.c.key_id)
        )
        async with self.engine.connect() as conn:
            return {k: float(v or 0) for k, v in (await conn.execute(query)).all()}


__all__ = ["GROUPS", "SUMMARY_COLUMNS", "Ledger"]
