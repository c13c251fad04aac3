"""The recorder: bounded queues in front of batched writers, never in the request path.

`record()` only appends to a queue per writer. A background task drains each queue in
batches. A writer that fails (the database is down) keeps its batch and is tried again after a
pause that doubles up to `max_backoff`; the other writers go on. When a writer's queue is full
(`max_queue` events: it has been failing a long while) new events for it are dropped and
counted in `dropped`, with a warning, so a stuck store can never slow or fail a request.
A graceful stop writes everything still queued, retrying for up to `stop_timeout` seconds.

A writer may turn each event into what it stores (`prepare`) as the event is recorded: then
the event's fields are still in the CPU's caches. Done a batch later, the same work cost the
gateway three to four times as much (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import orjson

from crossway.usage.events import UsageEvent

log = logging.getLogger("crossway.usage")


class UsageWriter(Protocol):
    """Writes batches. A writer with a `prepare(event)` method gets what that returned for
    each event; one without gets the events themselves."""

    async def write(self, items: list[Any]) -> None: ...


class MemoryWriter:
    """Keeps the most recent events; tests and the demo read them."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self.events: deque[UsageEvent] = deque(maxlen=maxlen)

    async def write(self, events: list[UsageEvent]) -> None:
        self.events.extend(events)

    def find(self, request_id: str) -> UsageEvent | None:
        return next((e for e in reversed(self.events) if e.request_id == request_id), None)


class LogWriter:
    """One JSON line per request, written a batch at a time (default: standard error).

    Not through `logging`: a log record per request costs more than the request's routing.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @staticmethod
    def prepare(event: UsageEvent) -> bytes:
        data = event.as_dict()
        try:
            return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:  # an integer past 64 bits (an upstream's absurd count)
            return json.dumps(data, default=str).encode() + b"\n"

    async def write(self, lines: list[bytes]) -> None:
        stream = self.stream or sys.stderr
        stream.write(b"".join(lines).decode())
        stream.flush()


class _Lane:
    """One writer and what it has still to write: its prepared events, and when each was
    recorded (unix time)."""

    def __init__(self, writer: UsageWriter) -> None:
        self.writer = writer
        self.prepare: Callable[[UsageEvent], Any] | None = getattr(writer, "prepare", None)
        self.queue: deque[Any] = deque()
        self.recorded_at: deque[float] = deque()
        self.dropped = 0
        self.failures = 0
        self.retry_at = 0.0


class UsageRecorder:
    def __init__(
        self,
        writers: list[UsageWriter],
        *,
        max_queue: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.1,
        max_backoff: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.lanes = [_Lane(w) for w in writers]
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self.lanes)

    @property
    def pending(self) -> int:
        return max((len(lane.queue) for lane in self.lanes), default=0)

    def record(self, event: UsageEvent) -> None:
        recorded_at = event.started_at + event.latency_ms / 1000  # now, without the clock
        for lane in self.lanes:
            if len(lane.queue) >= self.max_queue:
                lane.dropped += 1
                if lane.dropped == 1 or lane.dropped % 1000 == 0:
                    log.warning(
                        "usage queue of %s is full (%d): %d events dropped so far",
                        type(lane.writer).__name__,
                        self.max_queue,
                        lane.dropped,
                    )
                continue
            item: Any = event
            if lane.prepare is not None:
                try:
                    item = lane.prepare(event)
                except Exception:  # a writer's bug must not fail the request, nor its lane
                    lane.dropped += 1
                    log.exception(
                        "usage writer %s could not take event %s: dropped",
                        type(lane.writer).__name__,
                        event.request_id,
                    )
                    continue
            lane.queue.append(item)
            lane.recorded_at.append(recorded_at)
            if len(lane.queue) >= self.batch_size:
                self._wake.set()

    async def start(self) -> None:
        self._wake = asyncio.Event()  # bound to the serving loop
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def stop(self) -> None:
        """Stop the drain task and write everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + self.stop_timeout
        while any(lane.queue for lane in self.lanes) and time.monotonic() < deadline:
            await self.flush(force=True)
            if any(lane.queue for lane in self.lanes):
                await asyncio.sleep(0.2)
        for lane in self.lanes:
            if lane.queue:
                log.error(
                    "stopping with %d usage events not written by %s",
                    len(lane.queue),
                    type(lane.writer).__name__,
                )

    async def flush(self, force: bool = False, whole_only: bool = False) -> None:
        """Write what each lane has queued now, in batches. Events that arrive during the
        writes wait for the next turn unless a whole batch of them is waiting (or `force`):
        chasing them wrote a batch of a few rows per round trip under load, at many times
        the cost per row for the gateway and the database alike. With `whole_only` (a turn
        a whole batch started) a lane writes only whole batches unless its oldest event has
        waited `flush_interval`: the rest goes with the next whole batch, or with the turn
        the interval brings when none fills in time. Under load that halved the statements
        per row (every 500-row batch was followed by one of 47-90)."""
        now = time.monotonic()
        wall = time.time()
        for lane in self.lanes:
            if not force and lane.retry_at > now:
                continue
            due = len(lane.queue)
            if whole_only and due and wall - lane.recorded_at[0] < self.flush_interval:
                due = 0
            while lane.queue and (force or due > 0 or len(lane.queue) >= self.batch_size):
                batch = [lane.queue[i] for i in range(min(len(lane.queue), self.batch_size))]
                try:
                    await lane.writer.write(batch)
                except Exception:
                    lane.failures += 1
                    pause = min(self.max_backoff, 0.5 * 2 ** min(lane.failures - 1, 10))
                    lane.retry_at = time.monotonic() + pause
                    log.warning(
                        "usage writer %s failed (%d in a row); %d events wait, next try in %.1f s",
                        type(lane.writer).__name__,
                        lane.failures,
                        len(lane.queue),
                        pause,
                        exc_info=True,
                    )
                    break
                for _ in batch:
                    lane.queue.popleft()
                    lane.recorded_at.popleft()
                due -= len(batch)
                lane.failures = 0
                lane.retry_at = 0.0

    async def _run(self) -> None:
        while True:
            whole_only = True
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:  # no batch filled in time: write what there is
                whole_only = False
            self._wake.clear()
            await self.flush(whole_only=whole_only)
