"""Migrations: the declared head matches Alembic's, and they run on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

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


def test_0003_adds_spend_with_the_rows_and_comes_off_again() -> None:
    """On Postgres the keys' spend grows in the statement that inserts ledger rows; the
    migration goes down cleanly too (on a database of its own: it goes down and up)."""
    import asyncio
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
        _down_and_up(admin.set(database=name).render_as_string(hide_password=False))
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _down_and_up(url: str) -> None:
    import asyncio

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
