"""The usage recorder: off the request path, bounded, flushed on stop."""

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


class BrokenWriter:
    async def write(self, events: list[UsageEvent]) -> None:
        raise RuntimeError("disk on fire")


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
    assert recorder.dropped == 15


async def test_a_broken_writer_does_not_stop_the_others() -> None:
    memory = MemoryWriter()
    recorder = UsageRecorder([BrokenWriter(), memory], flush_interval=0.01)
    await recorder.start()
    recorder.record(event(1))
    await asyncio.sleep(0.1)
    assert memory.find("req_1") is not None
    await recorder.stop()
