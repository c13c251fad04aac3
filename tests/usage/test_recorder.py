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


class SlowWriter:
    """Takes `seconds` per write, like a database round trip under load; keeps each batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches: list[list[str]] = []

    async def write(self, events: list[UsageEvent]) -> None:
        await asyncio.sleep(self.seconds)
        self.batches.append([e.request_id for e in events])


async def test_events_arriving_during_a_write_wait_for_the_next_turn() -> None:
    """A steady trickle must not be written a few rows per round trip: each turn writes what
    was queued when it began, and what came during its writes waits for the next turn."""
    slow = SlowWriter(0.03)
    recorder = UsageRecorder([slow], flush_interval=0.2)
    await recorder.start()
    for n in range(200):  # one every 2 ms for about 0.4 s
        recorder.record(event(n))
        await asyncio.sleep(0.002)
    turns = len(slow.batches)
    await recorder.stop()
    # about one write per turn of 0.2 s; chasing the trickle wrote one per 30 ms (13+)
    assert turns <= 4, [len(b) for b in slow.batches]
    assert [r for b in slow.batches for r in b] == [f"req_{n}" for n in range(200)]


async def test_a_whole_batch_starts_a_turn_at_once() -> None:
    """A whole batch waiting does not wait for the interval; the turn it starts writes all
    that is queued, in batches no larger than batch_size."""
    writer = SlowWriter(0)
    recorder = UsageRecorder([writer], batch_size=50, flush_interval=60)
    await recorder.start()
    for n in range(49):
        recorder.record(event(n))
    await asyncio.sleep(0.05)
    assert writer.batches == []  # short of a batch: waits for its turn
    for n in range(49, 120):
        recorder.record(event(n))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if sum(map(len, writer.batches)) == 120:
            break
    assert [len(b) for b in writer.batches] == [50, 50, 20]
    await recorder.stop()
