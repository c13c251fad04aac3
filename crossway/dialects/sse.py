"""Server-sent events, cut only where an event ends.

A relay forwards what it has as soon as it has it, but never half an event: a client parser
may get a partial line otherwise, and the usage chunk could not be recognised.
"""

from __future__ import annotations


def last_boundary(data: bytes) -> int:
    """The end of the last complete event in `data` (after its blank line), or -1."""
    cut = data.rfind(b"\n\n")
    end = cut + 2 if cut >= 0 else -1
    if b"\r" in data:
        crlf = data.rfind(b"\r\n\r\n")
        if crlf >= 0:
            end = max(end, crlf + 4)
        cr = data.rfind(b"\r\r")
        if cr >= 0:
            end = max(end, cr + 2)
    return end


class EventCutter:
    """Feeds bytes in as they arrive and gives back the complete events among them."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        cut = last_boundary(data)
        if cut < 0:
            self._pending = data
            return b""
        if cut == len(data):
            self._pending = b""
            return data
        self._pending = data[cut:]
        return data[:cut]

    def finish(self) -> bytes:
        """What is left at the end: a last event without its blank line, completed."""
        rest, self._pending = self._pending, b""
        return rest + b"\n\n" if rest.strip() else b""


def event_data(raw_event: bytes) -> bytes | None:
    """The joined `data:` lines of one event, or None if it has none."""
    lines = [line[5:].lstrip(b" ") for line in raw_event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def last_event(data: bytes) -> bytes:
    """The final event in a run of complete events."""
    normal = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data
    return normal.rstrip().rsplit(b"\n\n", 1)[-1]
