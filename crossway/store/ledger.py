"""The usage ledger: one row per request, written in batches, read in aggregates.

Writes are idempotent (a batch retried after a lost acknowledgement inserts nothing twice),
and a key's spend grows only by the rows a batch actually inserted, atomically with them: in
the same transaction on SQLite, in the same statement on Postgres (migration 0003's trigger).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crossway.ir import Usage
from crossway.store.keys import _iso
from crossway.store.tables import usage
from crossway.usage import UsageEvent

log = logging.getLogger("crossway.usage")

GROUPS = ("day", "model", "key", "vendor")
# what a summary row counts (integers), and all it holds after its group, in order
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "images", "characters")
SUMMARY_COLUMNS = (*_COUNTS, "audio_seconds", "cost_usd")

# a row's values in the order the event and its usage hold them, so that two C-level gets
# make most of it; the statements name the columns, so the table's own order does not matter
_EVENT_FIELDS = (
    "request_id",
    "started_at",  # created_at: unix seconds; see _connection for Postgres, _write_sqlite
    "endpoint",
    "model_requested",
    "model",
    "upstream_model",
    "provider",
    "vendor",
    "status",
    "error_type",
    "stream",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "attempts",
    "upstream_request_id",
)
_USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "images",
    "characters",
    "audio_seconds",
)
_COLUMNS = [
    *("created_at" if f == "started_at" else f for f in _EVENT_FIELDS),
    *_USAGE_FIELDS,
    "key_id",
]
assert sorted(_COLUMNS) == sorted(c.name for c in usage.columns) and _COLUMNS[1] == "created_at"
_KEY_ID, _COST = _COLUMNS.index("key_id"), _COLUMNS.index("cost_usd")
_OF_EVENT, _OF_USAGE = attrgetter(*_EVENT_FIELDS), attrgetter(*_USAGE_FIELDS)
_NO_USAGE = Usage()
_STORED = "SELECT request_id FROM usage WHERE request_id = ANY($1::text[])"
_SQLITE_INSERT = (
    f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _row(event: UsageEvent) -> tuple[Any, ...]:
    """The event as a row of `usage`, its values in `_COLUMNS` order (created_at as unix
    seconds)."""
    principal = event.principal
    key_id = principal if principal.startswith("key_") else None
    return (*_OF_EVENT(event), *_OF_USAGE(event.usage or _NO_USAGE), key_id)


# Postgres counts timestamps in microseconds from 2000-01-01 UTC; the ledger's connection
# sends created_at as that count, made from unix seconds: asyncpg's own encoder for a
# datetime cost more than all the other columns of a row together
_PG_EPOCH_UNIX = 946_684_800
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _pg_timestamp(unix_seconds: float) -> tuple[int]:
    return (round((unix_seconds - _PG_EPOCH_UNIX) * 1_000_000),)


def _from_pg_timestamp(value: tuple[int]) -> dt.datetime:
    return _PG_EPOCH + dt.timedelta(microseconds=value[0])


_INT32 = 2_147_483_647


def _fitter(column: sa.Column[Any]) -> Callable[[Any], Any]:
    """What makes a value fit the column: text without NUL characters and no longer than
    the column, integers within 32 bits."""
    if isinstance(column.type, sa.String) and column.type.length:
        length = column.type.length
        return lambda v: v if v is None else str(v).replace("\x00", "")[:length]
    if isinstance(column.type, sa.Integer) and not isinstance(column.type, sa.BigInteger):
        return lambda v: v if v is None else max(-_INT32, min(int(v), _INT32))
    return lambda v: v


_FITTERS = [_fitter(usage.c[name]) for name in _COLUMNS]


def _fit(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(fit(value) for fit, value in zip(_FITTERS, row, strict=True))


def _sqlite_timestamp(unix_seconds: float) -> str:
    """What SQLAlchemy stores for a DateTime on SQLite: UTC, no offset."""
    return dt.datetime.fromtimestamp(unix_seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# a value a column cannot hold: raised while encoding (OverflowError) or by the database
_UNFIT = (OverflowError, ValueError, asyncpg.DataError)


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
        # Postgres batches go over a connection of their own, without the pool's checkout
        # ping and SQLAlchemy's per-row work
        self._pg: Any = None

    # an event's row is made as it is recorded (the recorder calls this), while the event is
    # warm in the caches: made a batch later, it cost three times as much
    prepare = staticmethod(_row)

    async def write(self, rows: list[tuple[Any, ...]]) -> None:
        """Store rows made by `prepare`, each at most once."""
        if self.engine.dialect.name == "postgresql":
            await self._write_postgres(rows)
        else:
            await self._write_sqlite(rows)

    async def _write_postgres(self, rows: list[tuple[Any, ...]]) -> None:
        """One binary COPY per batch, a statement atomic by itself; the keys' spend grows
        in it (migration 0003's trigger).

        COPY costs Postgres about a third of the CPU of an INSERT of the same rows (measured
        in docs/performance.md), and with no transaction around it a batch is one round trip
        instead of four. COPY cannot skip rows already stored: a batch that meets one
        (retried after its acknowledgement was lost) is copied again without them.
        """
        conn = await self._connection()
        try:
            try:
                await self._copy(conn, rows)
            except _UNFIT:
                # one value a column cannot hold (an upstream's absurd count or overlong id)
                # must not hold back this batch and every one after it: made to fit
                log.warning("a usage batch held a value its column cannot: written made to fit")
                await self._copy(conn, [_fit(row) for row in rows])
        except BaseException:
            # a broken or timed-out connection is not used again; the recorder retries
            conn.terminate()
            self._pg = None
            raise

    @staticmethod
    async def _copy(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        try:
            await conn.copy_records_to_table("usage", records=rows, columns=_COLUMNS)
        except asyncpg.UniqueViolationError:
            stored = {r[0] for r in await conn.fetch(_STORED, [row[0] for row in rows])}
            fresh = [row for row in rows if row[0] not in stored]
            if fresh:
                await conn.copy_records_to_table("usage", records=fresh, columns=_COLUMNS)

    async def _connection(self) -> Any:
        if self._pg is None or self._pg.is_closed():
            dsn = self.engine.url.set(drivername="postgresql")
            conn = await asyncpg.connect(
                dsn.render_as_string(hide_password=False), timeout=10, command_timeout=30
            )
            await conn.set_type_codec(
                "timestamptz",
                schema="pg_catalog",
                encoder=_pg_timestamp,
                decoder=_from_pg_timestamp,
                format="tuple",
            )
            self._pg = conn
        return self._pg

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    async def _write_sqlite(self, rows: list[tuple[Any, ...]]) -> None:
        """Plain executemany on the driver: SQLAlchemy's per-row parameter work cost three
        times SQLite's own. Rows already stored (a retried batch) are left out first, so
        only new rows count towards spend."""
        ids = [row[0] for row in rows]
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
            fresh = [
                (row[0], _sqlite_timestamp(row[1]), *row[2:])
                for row in rows
                if row[0] not in stored
            ]
            spend = _spend((row[_KEY_ID], row[_COST]) for row in fresh)
            if fresh:
                await db.execute("SAVEPOINT batch")
                try:
                    await db.executemany(_SQLITE_INSERT, fresh)
                except OverflowError:  # an integer past 64 bits; see _write_postgres
                    log.warning("a usage batch held a value its column cannot: made to fit")
                    await db.execute("ROLLBACK TO batch")  # the rows before it, inserted
                    await db.executemany(_SQLITE_INSERT, [_fit(row) for row in fresh])
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
