"""The recorder: a bounded queue in front of batched writers, never in the request path.

`record()` only appends to a queue. A background task drains it in batches to each writer
(a log line, memory for tests; the store's ledger later). When the queue is full the event is
counted in `dropped` and a warning is logged, so a stuck writer cannot slow a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from typing import Protocol, TextIO

import orjson

from crossway.usage.events import UsageEvent

log = logging.getLogger("crossway.usage")


class UsageWriter(Protocol):
    async def write(self, events: list[UsageEvent]) -> None: ...


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

    async def write(self, events: list[UsageEvent]) -> None:
        stream = self.stream or sys.stderr
        lines = b"".join(
            orjson.dumps(e.as_dict(), option=orjson.OPT_APPEND_NEWLINE) for e in events
        )
        stream.write(lines.decode())
        stream.flush()


class UsageRecorder:
    def __init__(
        self,
        writers: list[UsageWriter],
        *,
        max_queue: int = 50_000,
        batch_size: int = 500,
        flush_interval: float = 0.1,
    ) -> None:
        self.writers = writers
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self._queue: deque[UsageEvent] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: UsageEvent) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "usage queue full (%d): %d events dropped so far", self.max_queue, self.dropped
                )
            return
        self._queue.append(event)
        if len(self._queue) >= self.batch_size:
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
        await self.flush()

    async def flush(self) -> None:
        while self._queue:
            n = min(len(self._queue), self.batch_size)
            batch = [self._queue.popleft() for _ in range(n)]
            for writer in self.writers:
                try:
                    await writer.write(batch)
                except Exception:  # a failing writer must not stop the others
                    log.exception("usage writer %s failed", type(writer).__name__)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self.flush()
