"""The simulated upstream's OpenAI media endpoints: image generation and speech.

Images are a tiny valid PNG (by URL or as b64_json, as asked); speech is a deterministic
byte stream in the asked format, about 1 KB per 10 characters, sent in 4 KB chunks.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import default
from typing import Any

import orjson

from crossway.api.audio_duration import wav_seconds
from crossway.testing.faults import Faults
from crossway.testing.server import Reply

JSON = {"content-type": "application/json"}
# a 1x1 transparent PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
          "verse"}  # fmt: skip


def _error(status: int, message: str, param: str | None = None) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": None}}  # fmt: skip
    return Reply(status, JSON, orjson.dumps(body))


def images(body: dict[str, Any], model: str, rid: str) -> Reply:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return _error(400, "Missing required parameter: 'prompt'.", "prompt")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        return _error(400, "'n' must be an integer from 1 to 10.", "n")
    fmt = body.get("response_format") or "url"
    if fmt not in ("url", "b64_json"):
        return _error(400, f"Invalid value: '{fmt}'. Supported values are: 'url' and 'b64_json'.",
                      "response_format")  # fmt: skip
    data = []
    for i in range(n):
        item: dict[str, Any] = {"revised_prompt": f"[simulated] {prompt}"}
        if fmt == "url":
            item["url"] = f"https://images.simulated.invalid/{rid}-{i}.png"
        else:
            item["b64_json"] = base64.b64encode(PNG).decode()
        data.append(item)
    out: dict[str, Any] = {"created": int(time.time()), "data": data}
    if model.startswith("gpt-image"):
        out["usage"] = {"input_tokens": max(1, len(prompt) // 4), "output_tokens": 272 * n,
                        "total_tokens": max(1, len(prompt) // 4) + 272 * n}  # fmt: skip
    return Reply(200, {**JSON, "x-request-id": rid}, orjson.dumps(out))


def speech(body: dict[str, Any], rid: str) -> Reply:
    text = body.get("input")
    if not isinstance(text, str) or not text:
        return _error(400, "Missing required parameter: 'input'.", "input")
    if len(text) > 4096:
        return _error(400, "'input' is longer than 4096 characters.", "input")
    voice = body.get("voice")
    if voice not in VOICES:
        return _error(400, f"Invalid value for 'voice': {voice!r}.", "voice")
    fmt = body.get("response_format") or "mp3"
    if fmt not in AUDIO_TYPES:
        return _error(400, f"Invalid value for 'response_format': {fmt!r}.", "response_format")
    size = 1024 * max(1, len(text) // 10)
    seed = hashlib.sha256(f"{voice}:{fmt}:{text}".encode()).digest()
    audio = (seed * (size // len(seed) + 1))[:size]

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(audio), 4096):
            yield audio[i : i + 4096]

    headers = {"content-type": AUDIO_TYPES[fmt], "x-request-id": rid}
    return Reply(200, headers, stream=chunks())


def transcription(
    body: bytes, content_type: str, translate: bool, rid: str, simulate: str | None = None
) -> Reply:
    """A transcript that says what it received: the file's name and size, the fields.
    Faults (`status`, `malformed`) come from a `simulate` form field or the x-simulate
    header."""
    message = BytesParser(policy=default).parsebytes(
        b"content-type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    audio: tuple[str, int] | None = None
    seconds = 0.0
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if filename is not None:
            audio = (filename, len(data))
            # not a WAV file: as if 16 kB were a second
            seconds = round(wav_seconds(data) or len(data) / 16_000, 3)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    faults = Faults.parse(None, fields.get("simulate") or simulate)
    if faults.status:
        return _error(faults.status, f"simulated {faults.status} error")
    if faults.malformed:
        return Reply(200, {**JSON, "x-request-id": rid}, b"{this is not json")
    if audio is None:
        return _error(400, "Missing required parameter: 'file'.", "file")
    if not fields.get("model"):
        return _error(400, "Missing required parameter: 'model'.", "model")
    verb = "translated" if translate else "transcribed"
    text = f"[simulated] {verb} {audio[1]} bytes of {audio[0]} with {fields['model']}"
    if fields.get("language"):
        text += f" (language {fields['language']})"
    fmt = fields.get("response_format") or "json"
    plain = {"content-type": "text/plain; charset=utf-8", "x-request-id": rid}
    if fmt == "text":
        return Reply(200, plain, text.encode())
    end = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
    if fmt == "srt":
        cue = f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n"
        return Reply(200, plain, cue.encode())
    if fmt == "vtt":
        return Reply(200, plain, f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n".encode())
    out: dict[str, Any] = {"text": text}
    by_seconds = {"type": "duration", "seconds": -int(-seconds // 1)}  # billed rounded up
    if fmt == "verbose_json":
        task = "translate" if translate else "transcribe"
        out.update(task=task, language="english", duration=seconds, segments=[], usage=by_seconds)
    elif fields["model"].startswith("whisper"):
        out["usage"] = by_seconds
    else:  # the gpt-4o transcribers bill tokens
        heard, said = max(1, int(seconds * 10)), len(text) // 4
        out["usage"] = {
            "type": "tokens",
            "input_tokens": heard,
            "output_tokens": said,
            "total_tokens": heard + said,
            "input_token_details": {"audio_tokens": heard, "text_tokens": 0},
        }
    return Reply(200, {**JSON, "x-request-id": rid}, orjson.dumps(out))
