"""The store over both backends: SQLite and the Postgres on this machine."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossway.ir import Usage
from crossway.store.engine import create_engine
from crossway.store.keys import DuplicateName, KeyStore, hash_secret
from crossway.store.ledger import Ledger
from crossway.store.migrate import upgrade
from crossway.usage import UsageEvent


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    yield url


def event(n: int, key_id: str, cost: float | None = 0.25, **fields: object) -> UsageEvent:
    return UsageEvent(
        request_id=f"req_{n}_{time.time_ns()}",
        started_at=time.time(),
        endpoint="chat.completions",
        principal=key_id,
        model="gpt-4o",
        vendor="openai",
        status=200,
        usage=Usage(10, 5, 2, 1, images=n % 2, characters=3, audio_seconds=0.5),
        cost_usd=cost,
        **fields,
    )  # type: ignore[arg-type]


def test_keys_and_an_idempotent_ledger(database_url: str) -> None:
    async def run() -> None:
        engine = create_engine(database_url)
        keys, ledger = KeyStore(engine), Ledger(engine)
        try:
            key, secret = await keys.create(
                name=f"k-{time.time_ns()}",
                models=["gpt-*"],
                vendors=[],
                meta={},
                enabled=True,
                rpm=10**12,
            )
            assert (await keys.by_hash(hash_secret(secret))) == key
            with pytest.raises(DuplicateName):
                await keys.create(name=key.name, models=[], vendors=[], meta={}, enabled=True)
            batch = [event(i, key.id, stream=i % 2 == 0, ttft_ms=None) for i in range(300)]
            batch.append(event(999, "master", cost=None))
            made = list(map(ledger.prepare, batch))
            await ledger.write(made)
            await ledger.write(made[:100])  # a retried batch: nothing twice
            stored = await keys.get(key.id)
            assert stored is not None and stored.spend_total == pytest.approx(75.0)
            rows = await ledger.summary(key_id=key.id, group_by="model")
            assert rows == [
                {
                    "model": "gpt-4o",
                    "requests": 300,
                    "errors": 0,
                    "prompt_tokens": 3000,
                    "completion_tokens": 1500,
                    "images": 150,
                    "characters": 900,
                    "audio_seconds": pytest.approx(150.0),
                    "cost_usd": pytest.approx(75.0),
                }
            ]
            record = await ledger.request(batch[0].request_id)
            assert record is not None
            assert (record["cached_tokens"], record["reasoning_tokens"]) == (2, 1)
            assert (record["images"], record["characters"], record["audio_seconds"]) == (0, 3, 0.5)
            assert record["stream"] is True and record["ttft_ms"] is None
            assert record["created_at"].endswith("Z")
            spend_today = await ledger.spend_since(
                __import__("datetime")
                .datetime.now(__import__("datetime").UTC)
                .replace(hour=0, minute=0, second=0, microsecond=0)
            )
            assert spend_today[key.id] == pytest.approx(75.0)
            rotated = await keys.rotate(key.id)
            assert rotated is not None and rotated[0].key_hash != key.key_hash
            assert await keys.delete(key.id) and await keys.get(key.id) is None
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_record_keeps_every_field_as_recorded(database_url: str) -> None:
    """Each column from its own field, the time to the microsecond (Postgres gets it as a
    count of microseconds, SQLite as text), and found again by a time range around it."""
    started = dt.datetime(2026, 9, 21, 13, 14, 15, 123456, tzinfo=dt.UTC)
    full = UsageEvent(
        request_id=f"req_full_{time.time_ns()}",
        started_at=started.timestamp(),
        endpoint="chat.completions",
        principal="key_full",
        stream=True,
        model_requested="openai/gpt-4o",
        model="gpt-4o",
        upstream_model="gpt-4o-2024-08-06",
        provider="oai-east",
        vendor="openai",
        status=502,
        error_type="upstream_error",
        latency_ms=12.5,
        ttft_ms=3.25,
        usage=Usage(11, 7, 5, 3, images=2, characters=13, audio_seconds=1.5),
        cost_usd=0.0625,
        upstream_request_id="chatcmpl-up-1",
        attempts=2,
    )

    async def run() -> None:
        engine = create_engine(database_url)
        ledger = Ledger(engine)
        try:
            await ledger.write([ledger.prepare(full), ledger.prepare(event(1, "master"))])
            record = await ledger.request(full.request_id)
            assert record == {
                "request_id": full.request_id,
                "created_at": "2026-09-21T13:14:15.123456Z",
                "key_id": "key_full",
                "endpoint": "chat.completions",
                "model_requested": "openai/gpt-4o",
                "model": "gpt-4o",
                "upstream_model": "gpt-4o-2024-08-06",
                "provider": "oai-east",
                "vendor": "openai",
                "status": 502,
                "error_type": "upstream_error",
                "stream": True,
                "latency_ms": 12.5,
                "ttft_ms": 3.25,
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "cached_tokens": 5,
                "reasoning_tokens": 3,
                "cost_usd": 0.0625,
                "attempts": 2,
                "upstream_request_id": "chatcmpl-up-1",
                "images": 2,
                "characters": 13,
                "audio_seconds": 1.5,
            }
            one_us = dt.timedelta(microseconds=1)
            around = await ledger.summary(key_id="key_full", since=started, until=started + one_us)
            before = await ledger.summary(key_id="key_full", until=started)
            assert (around[0]["requests"], before[0]["requests"]) == (1, 0)
        finally:
            await ledger.close()
            await engine.dispose()

    asyncio.run(run())


def test_a_batch_whose_acknowledgement_was_lost_is_stored_and_charged_once(
    database_url: str,
) -> None:
    """The write lands but the gateway hears an error (the connection dropped after the
    commit): the recorder writes the batch again, and nothing is stored or charged twice."""
    from crossway.usage import UsageRecorder

    async def run() -> None:
        engine = create_engine(database_url)
        keys, ledger = KeyStore(engine), Ledger(engine)
        try:
            key, _ = await keys.create(
                name=f"ack-{time.time_ns()}", models=[], vendors=[], meta={}, enabled=True
            )
            real_write = ledger.write
            lost = [True]

            async def write_then_lose_the_ack(rows: list[tuple[Any, ...]]) -> None:
                await real_write(rows)
                if lost[0]:
                    lost[0] = False
                    raise ConnectionResetError("connection lost after the commit")

            ledger.write = write_then_lose_the_ack  # type: ignore[method-assign]
            recorder = UsageRecorder([ledger], flush_interval=0.01, max_backoff=0.05)
            await recorder.start()
            for i in range(40):
                recorder.record(event(i, key.id))
            deadline = time.monotonic() + 10
            while (recorder.pending or lost[0]) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await recorder.stop()
            assert not lost[0] and recorder.pending == 0
            rows = await ledger.summary(key_id=key.id)
            assert rows[0]["requests"] == 40
            stored = await keys.get(key.id)
            assert stored is not None and stored.spend_total == pytest.approx(10.0)
        finally:
            await ledger.close()
            await engine.dispose()

    asyncio.run(run())


def test_a_value_no_column_can_hold_does_not_hold_the_ledger_back(database_url: str) -> None:
    """An upstream's absurd count or overlong request id: the batch, and every one after it,
    is still written, with that value made to fit its column."""
    from crossway.usage import UsageRecorder

    async def run() -> None:
        engine = create_engine(database_url)
        ledger = Ledger(engine)
        try:
            recorder = UsageRecorder([ledger], flush_interval=0.01, max_backoff=0.05)
            await recorder.start()
            events = [event(i, "master") for i in range(30)]
            bad = events[3]
            bad.usage = Usage(10**19, 5)  # past Postgres's 32 bits and SQLite's 64
            bad.upstream_request_id = "up-\x00" + "x" * 500
            for e in events:
                recorder.record(e)
            deadline = time.monotonic() + 10
            while recorder.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await recorder.stop()
            assert recorder.pending == 0
            for e in events:
                assert await ledger.request(e.request_id) is not None
            row = await ledger.request(bad.request_id)
            assert row is not None
            assert row["prompt_tokens"] == 2**31 - 1
            assert row["upstream_request_id"] == "up-" + "x" * 197
        finally:
            await ledger.close()
            await engine.dispose()

    asyncio.run(run())
