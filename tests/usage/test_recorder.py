"""The usage recorder: off the request path, bounded, retried, flushed on stop."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
from collections.abc import Callable
from typing import Any

from crossway.ir import Usage
from crossway.usage import LogWriter, MemoryWriter, UsageEvent, UsageRecorder, UsageWriter


def event(n: int) -> UsageEvent:
    """An event recorded now."""
    return UsageEvent(
        request_id=f"req_{n}",
        started_at=time.time(),
        endpoint="chat.completions",
        principal="master",
    )


async def started(*writers: UsageWriter, **options: Any) -> UsageRecorder:
    recorder = UsageRecorder(list(writers), **options)
    await recorder.start()
    return recorder


def record(recorder: UsageRecorder, numbers: range) -> None:
    for n in numbers:
        recorder.record(event(n))


async def eventually(condition: Callable[[], bool], seconds: float = 1.0) -> None:
    """Wait until `condition()` holds, up to `seconds` (the test's assertion then says why)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


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
    await eventually(lambda: len(flaky.written) == 50, seconds=2.0)
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
        self.written_at: list[float] = []  # time.monotonic() of each batch

    async def write(self, events: list[UsageEvent]) -> None:
        await asyncio.sleep(self.seconds)
        self.batches.append([e.request_id for e in events])
        self.written_at.append(time.monotonic())


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
    """A whole batch waiting does not wait for the interval; the turn it starts writes whole
    batches only: the rest goes with the next whole batch (or the interval's turn)."""
    writer = SlowWriter(0)
    recorder = await started(writer, batch_size=50, flush_interval=60)
    record(recorder, range(49))
    await asyncio.sleep(0.05)
    assert writer.batches == []  # short of a batch: waits for its turn
    record(recorder, range(49, 120))
    await eventually(lambda: sum(map(len, writer.batches)) == 100)
    await asyncio.sleep(0.05)
    assert [len(b) for b in writer.batches] == [50, 50]
    record(recorder, range(120, 150))  # the 20 left over and 30 more: a whole batch
    await eventually(lambda: len(writer.batches) == 3)
    assert writer.batches[2] == [f"req_{n}" for n in range(100, 150)]
    record(recorder, range(150, 160))
    await recorder.stop()  # and a stop writes the rest
    assert [r for b in writer.batches for r in b] == [f"req_{n}" for n in range(160)]


async def test_what_is_left_of_a_whole_batch_goes_at_the_next_interval() -> None:
    """When no whole batch follows, the remainder waits no longer than the interval."""
    writer = SlowWriter(0)
    recorder = await started(writer, batch_size=50, flush_interval=0.1)
    record(recorder, range(70))
    await eventually(lambda: len(writer.batches) == 2)
    assert [len(b) for b in writer.batches] == [50, 20]
    # the whole one at once, the rest a turn later (a stalled machine only widens the gap)
    assert writer.written_at[1] - writer.written_at[0] >= 0.08
    await recorder.stop()


async def test_a_lane_whose_oldest_event_waited_the_interval_writes_it_with_a_whole_batch() -> None:
    """Turns started by another lane's whole batches (its database is down and its queue
    full: every record wakes the recorder) still write this lane's few events once the
    oldest has waited the interval."""
    failing, writer = FlakyWriter(failures=10**6), SlowWriter(0)
    recorder = UsageRecorder([failing, writer], batch_size=50, flush_interval=0.1, stop_timeout=0.2)
    await recorder.start()
    record(recorder, range(50))  # a whole batch: written by one lane, kept by the failing one
    await eventually(lambda: sum(map(len, writer.batches)) == 50)
    assert sum(map(len, writer.batches)) == 50
    for n in range(50, 90):  # 40 more, one every 10 ms: never a whole batch, never a pause
        recorder.record(event(n))
        await asyncio.sleep(0.01)
    written = [r for b in writer.batches for r in b]
    assert "req_50" in written  # waited its 100 ms, then went with the next turn
    await recorder.stop()


async def test_the_usage_log_has_one_json_line_per_event_in_order() -> None:
    stream = io.StringIO()
    recorder = await started(LogWriter(stream), flush_interval=60)
    for n in range(3):
        recorder.record(dataclasses.replace(event(n), usage=Usage(n, 2 * n)))
    assert stream.getvalue() == ""  # nothing written in the request's own path
    await recorder.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["req_0", "req_1", "req_2"]
    assert lines[2]["usage"]["prompt_tokens"] == 2 and lines[2]["usage"]["total_tokens"] == 6


async def test_an_integer_too_big_for_json_libraries_still_gets_its_log_line() -> None:
    stream = io.StringIO()
    recorder = await started(LogWriter(stream), flush_interval=60)
    absurd = event(1)
    absurd.usage = Usage(prompt_tokens=10**30)  # as an upstream might send it
    recorder.record(absurd)
    recorder.record(event(2))
    await recorder.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["usage"]["prompt_tokens"] == 10**30 and lines[1]["request_id"] == "req_2"


class PreparingWriter:
    """Prepares each event as its id, and cannot take one whose id ends in 7."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def prepare(self, event: UsageEvent) -> str:
        if event.request_id.endswith("7"):
            raise ValueError("a writer's bug")
        return event.request_id

    async def write(self, items: list[str]) -> None:
        self.written.extend(items)


async def test_a_writer_gets_what_it_prepared_and_one_it_cannot_take_costs_only_that_event() -> (
    None
):
    preparing, memory = PreparingWriter(), MemoryWriter()
    recorder = await started(preparing, memory, flush_interval=60)
    record(recorder, range(10))  # the request path never sees the writer's error
    assert recorder.dropped == 1
    await recorder.stop()
    assert preparing.written == [f"req_{n}" for n in range(10) if n != 7]
    assert len(memory.events) == 10  # the other writer got every event
