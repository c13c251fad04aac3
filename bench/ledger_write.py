"""Micro-benchmark: the gateway's CPU to write one ledger batch.

    .venv/bin/python bench/ledger_write.py [--url postgresql://postgres@127.0.0.1:5432/postgres]

Creates a scratch database beside the given one (Postgres) or a temporary file (SQLite),
writes 8 batches of 500 usage events, and prints the median process CPU per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time

import asyncpg
from sqlalchemy.engine import make_url

from crossway.ir import Usage
from crossway.store.engine import create_engine
from crossway.store.ledger import Ledger
from crossway.store.migrate import upgrade
from crossway.usage import UsageEvent


def batch(n: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            request_id=f"req_{n}_{i}_{time.time_ns()}",
            started_at=time.time(),
            endpoint="chat.completions",
            principal="key_x" if i % 2 else "master",
            model="gpt-4o",
            vendor="openai",
            status=200,
            usage=Usage(10, 5),
            cost_usd=0.001,
        )
        for i in range(500)
    ]


async def measure(url: str) -> float:
    engine = create_engine(url)
    ledger = Ledger(engine)
    cpu = []
    for n in range(8):
        events = batch(n)
        started = time.process_time()
        await ledger.write(events)
        cpu.append(time.process_time() - started)
    await engine.dispose()
    return sorted(cpu)[len(cpu) // 2]


async def scratch_postgres(admin_url: str, name: str, create: bool) -> None:
    url = make_url(admin_url)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(
            f'CREATE DATABASE "{name}"'
            if create
            else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a Postgres admin URL, or 'sqlite'",
    )
    args = parser.parse_args()
    if args.url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/ledger.db"
        upgrade(url)
        print(f"sqlite: {1000 * asyncio.run(measure(url)):.2f} ms CPU per 500 rows (median)")
        return
    name = f"crossway_ledger_bench_{secrets.token_hex(4)}"
    asyncio.run(scratch_postgres(args.url, name, create=True))
    try:
        url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        print(f"postgres: {1000 * asyncio.run(measure(url)):.2f} ms CPU per 500 rows (median)")
    finally:
        asyncio.run(scratch_postgres(args.url, name, create=False))


if __name__ == "__main__":
    main()
