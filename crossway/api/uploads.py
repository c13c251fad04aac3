"""Transcription and translation of audio: multipart uploads passed to OpenAI-format
upstreams without holding the file twice.

The body is read into one buffer as it arrives (413 from its declared length, before any of
it is read, when it is over `server.max_body_bytes`). Its form is parsed in place: the fields
are read, the file part is located, nothing is copied. What goes upstream is the same buffer
in pieces, with only the `model` field's value replaced by the deployment's name; the answer
(JSON, text, SRT or VTT, as asked) comes back as the upstream wrote it, once it is seen to
be what was asked for. The seconds of audio it covered are recorded for billing: as the
upstream reports them, else read off a WAV file's header or the subtitles' last cue.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import orjson

from crossway.api.audio_duration import subtitle_seconds, wav_seconds
from crossway.api.exchange import Exchange
from crossway.api.http import Request
from crossway.api.media import openai_format_only
from crossway.api.relay import relay_json
from crossway.api.routes import Route
from crossway.dialects.common import invalid
from crossway.dialects.openai.usage import media_usage_from
from crossway.dialects.registry import OPENAI
from crossway.errors import InvalidRequest, UpstreamError
from crossway.ir import Usage
from crossway.routing import Deployment

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
AUDIO_TYPES = ("audio/", "video/mp4", "video/webm", "application/octet-stream")
_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION = re.compile(rb'([a-z]+)="([^"]*)"', re.IGNORECASE)


@dataclass(slots=True)
class FilePart:
    filename: str
    content_type: str
    start: int  # offset of its bytes in the body
    size: int


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # field value offsets
    file: FilePart | None = None


def parse_form(buf: bytearray, content_type: str) -> Form:
    """The fields and the file of a multipart/form-data body, read in place."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequest(
            f"the body must be multipart/form-data (a file upload), not {content_type or 'unset'}",
            param="file",
            code="invalid_content_type",
            retryable=False,
        )
    found = _BOUNDARY.search(content_type.encode("latin-1"))
    if found is None:
        raise invalid("file", "the multipart body names no boundary")
    delimiter = b"--" + found.group(1)
    view = memoryview(buf)
    form = Form()
    at = buf.find(delimiter)
    while at >= 0:
        start = at + len(delimiter)
        if buf[start : start + 2] == b"--":
            break  # the closing delimiter
        head_end = buf.find(b"\r\n\r\n", start)
        next_at = buf.find(b"\r\n" + delimiter, head_end)
        if head_end < 0 or next_at < 0:
            raise invalid("file", "the multipart body is cut short or malformed")
        head = bytes(view[start:head_end]).lower()
        params = {
            k.decode().lower(): v for k, v in _DISPOSITION.findall(bytes(view[start:head_end]))
        }
        name = params.get("name", b"").decode("utf-8", "replace")
        value_start, value_end = head_end + 4, next_at
        if "filename" in params:
            ctype = b""
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-type:"):
                    ctype = line.split(b":", 1)[1].strip()
            form.file = FilePart(
                params["filename"].decode("utf-8", "replace"),
                ctype.decode("latin-1"),
                value_start,
                value_end - value_start,
            )
        else:
            form.fields[name] = bytes(view[value_start:value_end]).decode("utf-8", "replace")
            form.spans[name] = (value_start, value_end)
        at = next_at + 2
    return form


class UploadExchange(Exchange):
    """An upload passed through: the buffer in pieces, the model field's value replaced."""

    __slots__ = ("buffer", "content_type", "form")

    def __init__(self, buffer: bytearray, form: Form, content_type: str) -> None:
        super().__init__(OPENAI, {}, False)
        self.buffer = buffer
        self.form = form
        self.content_type = content_type  # multipart, with the body's boundary

    def headers(self) -> bytes:
        return b"content-type: " + self.content_type.encode("latin-1") + b"\r\n"

    carries_media = False

    def body_for(self, dep: Deployment) -> bytes | list[bytes | memoryview]:
        view = memoryview(self.buffer)
        start, end = self.form.spans["model"]
        return [view[:start], dep.upstream_model.encode(), view[end:]]

    def answer(self, dep: Deployment, raw: bytes) -> tuple[bytes, Usage | None]:
        """The transcript as the upstream wrote it, and what it bills."""
        fmt = self.form.fields.get("response_format") or "json"
        usage = Usage()  # text, srt and vtt answers report none
        if fmt in ("json", "verbose_json"):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                provider = dep.provider
                raise UpstreamError(
                    f"upstream {provider.name} ({provider.vendor}) was asked for a {fmt} "
                    "transcript and answered with something else",
                    vendor=provider.vendor,
                )
            usage = media_usage_from(data)
        if not (usage.audio_seconds or usage.prompt_tokens):
            file = self.form.file
            assert file is not None
            audio = memoryview(self.buffer)[file.start : file.start + file.size]
            seconds = wav_seconds(audio)
            if seconds is None and fmt in ("srt", "vtt"):
                seconds = subtitle_seconds(raw)
            usage.audio_seconds = seconds or 0.0
        return raw, usage


def _check(form: Form) -> None:
    if form.file is None:
        raise invalid("file", "is required: the audio to transcribe, as a file part")
    if form.file.size == 0:
        raise invalid("file", "is empty")
    ctype = form.file.content_type.lower()
    if ctype and not ctype.startswith(AUDIO_TYPES):
        raise invalid("file", f"must be audio, not {ctype}")
    if not form.fields.get("model", "").strip():
        raise invalid("model", "is required")
    fmt = form.fields.get("response_format")
    if fmt is not None and fmt not in RESPONSE_FORMATS:
        raise invalid("response_format", "must be one of " + ", ".join(RESPONSE_FORMATS))
    temperature = form.fields.get("temperature")
    if temperature is not None:
        try:
            ok = 0.0 <= float(temperature) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise invalid("temperature", "must be a number from 0 to 1")


async def _audio(req: Request, endpoint: str, operation: str) -> None:
    services = req.services
    buffer = await req.upload(services.settings.server.max_body_bytes)
    content_type = req.header(b"content-type") or ""
    form = parse_form(buffer, content_type)
    _check(form)
    model = form.fields["model"].strip()
    route = services.router.resolve(model, req.header(b"vendor"))
    route = openai_format_only(route, "audio transcription")
    route = dataclasses.replace(route, fallbacks=[])
    exchange = UploadExchange(buffer, form, content_type)
    await relay_json(req, endpoint, operation, route, exchange)


async def transcriptions(req: Request) -> None:
    await _audio(req, "audio.transcriptions", "transcriptions")


async def translations(req: Request) -> None:
    await _audio(req, "audio.translations", "translations")


ROUTES = [
    Route("POST", "/v1/audio/transcriptions", transcriptions, metered="audio.transcriptions"),
    Route("POST", "/v1/audio/translations", translations, metered="audio.translations"),
]
