"""The usage recorder: off the request path, bounded, retried, flushed on stop."""

from __future__ import annotations

import asyncio

from crossway.usage import MemoryWriter, UsageEvent, UsageRecorder


def event(n: int) -> UsageEvent:
    return UsageEvent(
        request_id=f"req_{n}", started_at=0.0, endpoint="chat.completions", principal="master"
    )


class StuckWriter:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def write(self, events: list[UsageEvent]) -> None:
        await self.release.wait()


class FlakyWriter:
    """Fails `failures` times, then writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[str] = []

    async def write(self, events: list[UsageEvent]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        self.written.extend(e.request_id for e in events)


async def test_stop_flushes_everything_pending() -> None:
    memory = MemoryWriter()
    recorder = UsageRecorder([memory], flush_interval=60)
    await recorder.start()
    for n in range(1234):
        recorder.record(event(n))
    await recorder.stop()
    assert [e.request_id for e in memory.events] == [f"req_{n}" for n in range(1234)]


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    recorder = UsageRecorder([StuckWriter()], max_queue=10, batch_size=5, flush_interval=60)
    for n in range(25):
        recorder.record(event(n))  # never awaits: a stuck store cannot slow a request
    assert recorder.dropped == 15 and recorder.pending == 10


async def test_a_failing_writer_keeps_its_events_and_retries() -> None:
    flaky, memory = FlakyWriter(failures=2), MemoryWriter()
    recorder = UsageRecorder([flaky, memory], flush_interval=0.01, max_backoff=0.05)
    await recorder.start()
    for n in range(50):
        recorder.record(event(n))
    for _ in range(200):
        if len(flaky.written) == 50:
            break
        await asyncio.sleep(0.01)
    assert flaky.written == [f"req_{n}" for n in range(50)]  # all of them, in order, once
    assert len(memory.events) == 50  # the healthy writer never waited for the broken one
    await recorder.stop()


async def test_stop_retries_a_writer_that_recovers() -> None:
    flaky = FlakyWriter(failures=3)
    recorder = UsageRecorder([flaky], flush_interval=60, stop_timeout=5)
    await recorder.start()
    for n in range(10):
        recorder.record(event(n))
    await recorder.stop()
    assert len(flaky.written) == 10
