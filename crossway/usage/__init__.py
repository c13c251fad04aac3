"""Usage events: one per request, recorded off the request path."""

from crossway.usage.events import UsageEvent
from crossway.usage.recorder import LogWriter, MemoryWriter, UsageRecorder, UsageWriter

__all__ = ["LogWriter", "MemoryWriter", "UsageEvent", "UsageRecorder", "UsageWriter"]
