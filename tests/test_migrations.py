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
