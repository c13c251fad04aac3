"""Micro-benchmark: the CPU to write one ledger batch, the gateway's and the database's.

    .venv/bin/python bench/ledger_write.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                                           [--schemas]

Creates a scratch database beside the given one (Postgres) or a temporary file (SQLite),
writes 40 batches of 500 usage events, and prints the median process CPU per batch. For a
Postgres on this machine it also prints the CPU all `postgres` processes used per row (the
backend, the WAL writer, ...), read from /proc: on a machine the gateway shares with its
database, that CPU is taken from the gateway.

--schemas compares the `usage` table as migrated with variants of it that were candidates
(SCHEMAS): one scratch database each, written in turn, round after round, so drift hits all
of them; it prints Postgres's CPU per row for each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # procs.py beside this file, however this is run
    sys.path.insert(0, _HERE)

from procs import cpu_of_named  # noqa: E402

from crossway.api.asgi import new_request_id  # noqa: E402
from crossway.ir import Usage  # noqa: E402
from crossway.store.engine import create_engine  # noqa: E402
from crossway.store.ledger import Ledger  # noqa: E402
from crossway.store.migrate import upgrade  # noqa: E402
from crossway.usage import UsageEvent  # noqa: E402


def batch(n: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            request_id=new_request_id(),  # as the gateway makes them: in time order
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


def rows(ledger: Ledger, n: int) -> list[tuple[Any, ...]]:
    """Batch n made into the ledger's rows, as the recorder makes them."""
    return [ledger.prepare(e) for e in batch(n)]


BATCHES = 40


async def measure(url: str) -> tuple[float, float | None]:
    """Median gateway CPU per batch (s), and the database's CPU per row (s) if readable."""
    engine = create_engine(url)
    ledger = Ledger(engine)
    await ledger.write(rows(ledger, -1))  # connect and warm up
    batches = [batch(n) for n in range(BATCHES)]
    cpu = []
    server_before = cpu_of_named("postgres")
    for events in batches:
        started = time.process_time()  # the rows made, as the recorder does, and written
        await ledger.write([ledger.prepare(e) for e in events])
        cpu.append(time.process_time() - started)
    server_after = cpu_of_named("postgres")
    await ledger.close()
    await engine.dispose()
    server = None
    if server_before is not None and server_after is not None:
        server = (server_after - server_before) / (BATCHES * 500)
    return sorted(cpu)[len(cpu) // 2], server


# what each variant changes after the migrations
SCHEMAS = {
    "as migrated": None,
    'request_id COLLATE "C"': 'ALTER TABLE usage ALTER request_id TYPE varchar(40) COLLATE "C"',
    "no primary key": "ALTER TABLE usage DROP CONSTRAINT usage_pkey",
}
SCHEMA_ROUNDS, SCHEMA_BATCHES = 8, 100


async def measure_schemas(urls: dict[str, str]) -> dict[str, list[float]]:
    """Postgres's CPU per row (s) in each round, for each variant's database."""
    ledgers = {}
    for name, url in urls.items():
        engine = create_engine(url)
        ledger = Ledger(engine)
        await ledger.write(rows(ledger, -1))  # connect and warm up
        if SCHEMAS[name]:
            await (await ledger._connection()).execute(SCHEMAS[name])
        ledgers[name] = engine, ledger
    per_row: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(SCHEMA_ROUNDS):
        for name, (_, ledger) in ledgers.items():
            made = [rows(ledger, n) for n in range(SCHEMA_BATCHES)]
            before = cpu_of_named("postgres")
            for one in made:
                await ledger.write(one)
            after = cpu_of_named("postgres")
            if before is not None and after is not None:
                per_row[name].append((after - before) / (SCHEMA_BATCHES * 500))
    for engine, ledger in ledgers.values():
        await ledger.close()
        await engine.dispose()
    return per_row


def compare_schemas(admin_url: str) -> None:
    with scratch_databases(admin_url, len(SCHEMAS)) as urls:
        per_row = asyncio.run(measure_schemas(dict(zip(SCHEMAS, urls, strict=True))))
    for name, values in per_row.items():
        if not values:
            print(f"{name}: Postgres's CPU not readable here")
            continue
        runs = ", ".join(f"{1e6 * v:.1f}" for v in values)
        print(
            f"{name}: Postgres's CPU {1e6 * statistics.median(values):.2f} us per row "
            f"(median of {len(values)} rounds of {SCHEMA_BATCHES} x 500 rows: {runs})"
        )


@contextlib.contextmanager
def scratch_databases(admin_url: str, count: int) -> Iterator[list[str]]:
    """`count` migrated scratch databases beside the admin URL's, dropped at the end."""
    names = [f"crossway_ledger_bench_{secrets.token_hex(4)}" for _ in range(count)]
    try:
        urls = []
        for name in names:
            asyncio.run(scratch_postgres(admin_url, name, create=True))
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            urls.append(url)
        yield urls
    finally:
        for name in names:
            asyncio.run(scratch_postgres(admin_url, name, create=False))


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
    parser.add_argument("--schemas", action="store_true", help="compare SCHEMAS (Postgres)")
    args = parser.parse_args()
    if args.schemas:
        compare_schemas(args.url)
        return
    if args.url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/ledger.db"
        upgrade(url)
        gateway, _ = asyncio.run(measure(url))
        print(f"sqlite: {1000 * gateway:.2f} ms CPU per 500 rows (median)")
        return
    with scratch_databases(args.url, 1) as (url,):
        gateway, server = asyncio.run(measure(url))
    line = f"postgres: {1000 * gateway:.2f} ms gateway CPU per 500 rows (median)"
    if server is not None:
        line += f"; Postgres's own CPU {1e6 * server:.1f} us per row"
    print(line)


if __name__ == "__main__":
    main()
