"""Micro-benchmark: the CPU to write one ledger batch, the gateway's and the database's.

    .venv/bin/python bench/ledger_write.py [--url postgresql://postgres@127.0.0.1:5432/postgres]

Creates a scratch database beside the given one (Postgres) or a temporary file (SQLite),
writes 40 batches of 500 usage events, and prints the median process CPU per batch. For a
Postgres on this machine it also prints the CPU all `postgres` processes used per row (the
backend, the WAL writer, ...), read from /proc: on a machine the gateway shares with its
database, that CPU is taken from the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

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


BATCHES = 40


async def measure(url: str) -> tuple[float, float | None]:
    """Median gateway CPU per batch (s), and the database's CPU per row (s) if readable."""
    engine = create_engine(url)
    ledger = Ledger(engine)
    await ledger.write(list(map(ledger.prepare, batch(-1))))  # connect and warm up
    batches = [batch(n) for n in range(BATCHES)]
    cpu = []
    server_before = cpu_of_named("postgres")
    for events in batches:
        started = time.process_time()
        await ledger.write([ledger.prepare(e) for e in events])  # as the recorder does
        cpu.append(time.process_time() - started)
    server_after = cpu_of_named("postgres")
    await ledger.close()
    await engine.dispose()
    server = None
    if server_before is not None and server_after is not None:
        server = (server_after - server_before) / (BATCHES * 500)
    return sorted(cpu)[len(cpu) // 2], server


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
        gateway, _ = asyncio.run(measure(url))
        print(f"sqlite: {1000 * gateway:.2f} ms CPU per 500 rows (median)")
        return
    name = f"crossway_ledger_bench_{secrets.token_hex(4)}"
    asyncio.run(scratch_postgres(args.url, name, create=True))
    try:
        url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        gateway, server = asyncio.run(measure(url))
        line = f"postgres: {1000 * gateway:.2f} ms gateway CPU per 500 rows (median)"
        if server is not None:
            line += f"; Postgres's own CPU {1e6 * server:.1f} us per row"
        print(line)
    finally:
        asyncio.run(scratch_postgres(args.url, name, create=False))


if __name__ == "__main__":
    main()
