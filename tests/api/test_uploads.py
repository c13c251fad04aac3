"""Transcription and translation uploads through the official openai SDK, with a real WAV
made here by a tone generator."""

from __future__ import annotations

import io
import math
import os
import socket
import struct
import sys
import wave

import httpx
import openai
import pytest
from conftest import MASTER_KEY, RunningGateway


def tone(seconds: float = 0.5, rate: int = 16000, hz: float = 440.0) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()


WAV = tone()


def test_transcription_in_every_format(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("tone.wav", WAV, "audio/wav"), language="en"
    )
    text = raw.parse().text
    assert (
        text == f"[simulated] transcribed {len(WAV)} bytes of tone.wav with whisper-1 (language en)"
    )
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.endpoint == "audio.transcriptions" and event.status == 200
    plain = client.audio.transcriptions.create(
        model="whisper-1", file=("tone.wav", WAV, "audio/wav"), response_format="text"
    )
    assert isinstance(plain, str) and plain.startswith("[simulated] transcribed")
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=("tone.wav", WAV, "audio/wav"), response_format="srt"
    )
    assert "-->" in str(srt)
    verbose = client.audio.transcriptions.create(
        model="gpt-4o-transcribe",
        file=("tone.wav", WAV, "audio/wav"),
        response_format="verbose_json",
    )
    assert verbose.text.endswith("with gpt-4o-transcribe")


def test_translation(client: openai.OpenAI) -> None:
    out = client.audio.translations.create(model="whisper-1", file=("tone.wav", WAV, "audio/wav"))
    assert out.text.startswith(f"[simulated] translated {len(WAV)} bytes")


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "crossway-test-boundary"
    body = b""
    for name, filename, ctype, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\ncontent-disposition: {disposition}\r\n".encode()
        if ctype:
            body += f"content-type: {ctype}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("parts", "param"),
    [
        ([("model", None, None, b"whisper-1")], "file"),
        ([("model", None, None, b"whisper-1"), ("file", "a.txt", "text/plain", b"hello")], "file"),
        ([("file", "a.wav", "audio/wav", WAV)], "model"),
        (
            [
                ("model", None, None, b"whisper-1"),
                ("response_format", None, None, b"mp3"),
                ("file", "a.wav", "audio/wav", WAV),
            ],
            "response_format",
        ),
    ],
)
def test_bad_uploads_name_the_field(
    gateway: RunningGateway, parts: list[tuple[str, str | None, str | None, bytes]], param: str
) -> None:
    body, ctype = _multipart(parts)
    resp = httpx.post(
        f"{gateway.base_url}/audio/transcriptions",
        content=body,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": ctype},
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_not_an_upload_and_too_large(gateway: RunningGateway) -> None:
    resp = httpx.post(
        f"{gateway.base_url}/audio/transcriptions",
        json={"model": "whisper-1"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert resp.status_code == 400 and "multipart/form-data" in resp.json()["error"]["message"]
    host, port = gateway.root.removeprefix("http://").split(":")
    limit = gateway.services.settings.server.max_body_bytes
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(  # a declared size over the limit is refused before any of it is read
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
            + MASTER_KEY.encode()
            + b"\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: %d\r\n\r\n"
            % (limit + 1)
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


def test_transcriptions_are_billed_by_the_seconds_heard(
    client: openai.OpenAI, gateway: RunningGateway
) -> None:
    def billed(response_format: str, model: str = "whisper-1", **file: bytes) -> tuple[float, int]:
        name, data = next(iter(file.items()), ("tone.wav", tone(2.5)))
        raw = client.audio.transcriptions.with_raw_response.create(
            model=model,
            file=(name, data),
            response_format=response_format,  # type: ignore[arg-type]
        )
        event = gateway.event(raw.http_response.headers["x-request-id"])
        assert event.usage is not None and event.cost_usd is not None
        return event.usage.audio_seconds, event.usage.prompt_tokens

    assert billed("json") == (3.0, 0)  # whisper's usage: seconds, rounded up
    assert billed("verbose_json") == (3.0, 0)
    assert billed("text") == (2.5, 0)  # no usage in the answer: the WAV header's length
    # not a WAV file: the end of the last subtitle (16 kB a second, in the simulated upstream)
    assert billed("srt", **{"talk.mp3": bytes(40_000)}) == (2.5, 0)
    assert billed("vtt", **{"talk.mp3": bytes(40_000)}) == (2.5, 0)
    assert billed("json", "gpt-4o-transcribe") == (0.0, 25)  # billed by its tokens
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("tone.wav", tone(2.5))
    )
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.cost_usd == pytest.approx(3 * 0.0001)  # $0.006 a minute


def test_a_transcript_that_is_not_json_is_a_502(gateway: RunningGateway) -> None:
    client = gateway.client(max_retries=0)
    with pytest.raises(openai.APIStatusError) as broken:
        client.audio.transcriptions.create(
            model="whisper-1",
            file=("tone.wav", WAV, "audio/wav"),
            extra_body={"simulate": '{"malformed": true}'},
        )
    assert broken.value.status_code == 502
    assert "was asked for a json transcript" in broken.value.message


def test_an_upload_writes_nothing_to_disk(client: openai.OpenAI) -> None:
    """Every file this process opens for writing while a 3 MB upload goes through (the
    gateway and the simulated upstream run here): none."""
    written: list[str] = []
    watching = False

    def hook(event: str, args: tuple[object, ...]) -> None:
        if not watching:
            return
        if event == "open" and len(args) > 1 and isinstance(args[1], str):
            if set(args[1]) & set("wax+"):
                written.append(str(args[0]))
        elif event == "open" and len(args) > 2 and isinstance(args[2], int):
            if args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                written.append(str(args[0]))
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir"):
            written.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed: this one is off outside the test
    big = tone(90.0)  # 2.9 MB of WAV
    watching = True
    try:
        out = client.audio.transcriptions.create(model="whisper-1", file=("long.wav", big))
    finally:
        watching = False
    assert out.text.startswith(f"[simulated] transcribed {len(big)} bytes")
    assert written == []
