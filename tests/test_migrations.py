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
