"""Transcription and translation uploads through the official openai SDK, with a real WAV
made here by a tone generator."""

from __future__ import annotations

import io
import math
import socket
import struct
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
