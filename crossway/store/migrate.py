"""`crossway db upgrade`: bring the database to the newest schema with Alembic."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TYPE_CHECKING

from crossway.store.engine import async_url
from crossway.store.meta import sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# the newest revision in migrations/versions (a test keeps the two in step)
HEAD = "0005"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolation: a literal % in a password must be doubled
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run pending migrations. Call it outside a running event loop (it runs its own).

    Safe when several gateways start at once: Postgres migrations hold an advisory lock;
    SQLite ones a lock file beside the database.
    """
    if revision == "head" and _current_fast(database_url) == HEAD:
        return  # nothing to do: spare start-up the cost of loading Alembic
    from alembic import command  # only when there is something to do: it is large

    path = sqlite_path(database_url)
    if path is None:
        command.upgrade(alembic_config(database_url), revision)
        return
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        command.upgrade(alembic_config(database_url), revision)


def _current_fast(database_url: str) -> str | None:
    path = sqlite_path(database_url)
    if path is None:
        try:
            return current(database_url)
        except Exception:
            return None
    if not path.exists():
        return None
    import sqlite3

    try:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def current(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    import asyncio

    from sqlalchemy import text

    from crossway.store.engine import create_engine

    async def read() -> str | None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                try:
                    row = (
                        await conn.execute(text("SELECT version_num FROM alembic_version"))
                    ).first()
                except Exception:
                    return None
                return str(row[0]) if row else None
        finally:
            await engine.dispose()

    return asyncio.run(read())
