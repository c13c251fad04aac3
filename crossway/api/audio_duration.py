"""How many seconds of audio a transcription covered, when the upstream does not say.

Whisper bills by the second and says how many only in its JSON answers (`usage.seconds`, or
`duration` in verbose_json). For the other formats the duration is read off the file itself
(WAV's header gives it exactly) or off the subtitles (the last cue's end).
"""

from __future__ import annotations

import re

_CUE_END = re.compile(rb"-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})")


def wav_seconds(data: bytes | memoryview) -> float | None:
    """The length of a RIFF/WAVE file from its `fmt ` and `data` chunks; None if not one."""
    view = memoryview(data)
    if len(view) < 12 or bytes(view[0:4]) != b"RIFF" or bytes(view[8:12]) != b"WAVE":
        return None
    at, byte_rate = 12, 0
    while at + 8 <= len(view):
        chunk_id = bytes(view[at : at + 4])
        size = int.from_bytes(view[at + 4 : at + 8], "little")
        body = at + 8
        if chunk_id == b"fmt " and size >= 12 and body + 12 <= len(view):
            byte_rate = int.from_bytes(view[body + 8 : body + 12], "little")
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            # a header written before the length was known says 0 or 0xFFFFFFFF
            available = len(view) - body
            length = available if size in (0, 0xFFFFFFFF) else min(size, available)
            return length / byte_rate
        at = body + size + (size & 1)  # chunks are padded to even lengths
    return None


def subtitle_seconds(text: bytes) -> float | None:
    """The end of the last cue of SRT or WebVTT subtitles."""
    last = None
    for hours, minutes, seconds, millis in _CUE_END.findall(text):
        last = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000
    return last
