"""Migrations: the declared head matches Alembic's, and they run on both databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from crossway.store.engine import create_engine
from crossway.store.migrate import HEAD, alembic_config, current, upgrade


def test_head_constant_matches_the_migrations() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db"))
    assert script.get_current_head() == HEAD


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_is_idempotent(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/m.db"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    assert current(url) == HEAD
    upgrade(url)  # the second time finds nothing to do
    assert current(url) == HEAD


def test_0002_keeps_rows_written_before_it(tmp_path: Path) -> None:
    """A ledger from before the media units gains the columns; its rows count zero units."""
    import sqlite3

    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, "0001")
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute(
            "INSERT INTO usage (request_id, created_at, endpoint, status, stream, latency_ms,"
            " prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, attempts)"
            " VALUES ('r1', '2026-01-01 00:00:00', 'chat.completions', 200, 0, 1.0, 5, 7, 0, 0,"
            " 1)"
        )
    upgrade(url)
    assert current(url) == HEAD
    with sqlite3.connect(tmp_path / "old.db") as db:
        row = db.execute(
            "SELECT prompt_tokens, images, characters, audio_seconds FROM usage"
        ).fetchone()
    assert row == (5, 0, 0, 0.0)


@contextlib.contextmanager
def own_postgres_database() -> Iterator[str]:
    """A Postgres database of the test's own, for migrations that go down and up again."""
    import secrets

    import asyncpg
    from conftest import POSTGRES_ADMIN_URL
    from sqlalchemy.engine import make_url

    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"crossway_test_m_{secrets.token_hex(4)}"
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_0003_adds_spend_with_the_rows_and_comes_off_again() -> None:
    """On Postgres the keys' spend grows in the statement that inserts ledger rows; the
    migration goes down cleanly too."""
    with own_postgres_database() as url:
        _down_and_up(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_ledger_keeps_only_the_indexes_its_reads_need(backend: str, tmp_path: Path) -> None:
    """0004 drops the model and vendor indexes; on Postgres 0005 puts a BRIN index on time
    in place of the time and key B-trees (SQLite keeps them). Both come off again."""
    from alembic import command

    def indexes(url: str) -> set[str]:
        async def read() -> set[str]:
            engine = create_engine(url)
            try:
                async with engine.connect() as conn:
                    found = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("usage"))
                return {str(i["name"]) for i in found}
            finally:
                await engine.dispose()

        return asyncio.run(read())

    btrees = {"ix_usage_created_at", "ix_usage_key_id"}
    newest = btrees if backend == "sqlite" else {"ix_usage_created_at_brin"}
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path}/m.db"
        else:
            url = stack.enter_context(own_postgres_database())
        upgrade(url, "0004")
        assert indexes(url) == btrees
        command.downgrade(alembic_config(url), "0003")
        assert indexes(url) == btrees | {"ix_usage_model", "ix_usage_vendor"}
        upgrade(url)
        assert current(url) == HEAD
        assert indexes(url) == newest
        if backend == "postgres":
            assert _options(url, "ix_usage_created_at_brin") == ["autosummarize=on"]
        command.downgrade(alembic_config(url), "0004")
        assert indexes(url) == btrees
        upgrade(url)
        assert indexes(url) == newest


def _options(url: str, index: str) -> list[str] | None:
    import asyncpg

    async def read() -> list[str] | None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            found: list[str] | None = await conn.fetchval(
                "SELECT reloptions FROM pg_class WHERE relname = $1", index
            )
            return found
        finally:
            await conn.close()

    return asyncio.run(read())


def _down_and_up(url: str) -> None:
    import asyncpg
    from alembic import command

    upgrade(url)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def insert_and_read(request_id: str) -> float:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO api_keys (id, name, key_hash, prefix, models, vendors, meta, enabled,"
                " created_at, updated_at) VALUES ('key_m', 'm', 'h', 'p', '[]', '[]', '{}', true,"
                " now(), now()) ON CONFLICT DO NOTHING"
            )
            await conn.execute(
                "INSERT INTO usage (request_id, created_at, key_id, endpoint, status, stream,"
                " latency_ms, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,"
                " attempts, cost_usd) VALUES ($1, now(), 'key_m', 'chat.completions', 200, false,"
                " 1.0, 1, 1, 0, 0, 1, 0.5), ($1 || 'b', now(), 'key_m', 'chat.completions', 200,"
                " false, 1.0, 1, 1, 0, 0, 1, 0.25)",
                request_id,
            )
            spent: float = await conn.fetchval(
                "SELECT spend_total FROM api_keys WHERE id = 'key_m'"
            )
            return spent
        finally:
            await conn.close()

    assert asyncio.run(insert_and_read("r1")) == pytest.approx(0.75)
    command.downgrade(alembic_config(url), "0002")
    assert current(url) == "0002"
    assert asyncio.run(insert_and_read("r2")) == pytest.approx(0.75)  # no trigger: unchanged
    upgrade(url)
    assert current(url) == HEAD
