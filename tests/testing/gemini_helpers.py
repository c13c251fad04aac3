"""Shared by the simulated upstream's Gemini tests: clients, requests, constants."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import UPSTREAM_KEY
from gemini_contracts import (
    validate_gemini_error,
    validate_gemini_request,
    validate_gemini_response,
    validate_gemini_stream,
)
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from crossway.testing import SimulatedUpstream

KEY = UPSTREAM_KEY
MODEL = "gemini-2.5-flash"
GEMINI3 = "gemini-3-pro-preview"
STUDIO = f"/v1beta/models/{MODEL}"
VERTEX = f"/v1/projects/p/locations/us-central1/publishers/google/models/{MODEL}"
HELLO: Any = [{"role": "user", "parts": [{"text": "hello there"}]}]
PARALLEL: Any = [{"role": "user", "parts": [{"text": "weather and time [parallel]"}]}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME: Any = {  # the OpenAPI-style form, upper-case type names
    "name": "get_time",
    "parameters": {"type": "OBJECT", "properties": {"zone": {"type": "STRING"}}},
}
TOOLS: Any = [{"functionDeclarations": [WEATHER, TIME]}]
IMAGE = {"inlineData": {"mimeType": "image/png", "data": "aGk="}}
FILE_URI = "https://generativelanguage.googleapis.com/v1beta/files/abc123"


# A genai.Client closes its HTTP client when it is garbage-collected, even while its `models`
# is still in use (`studio(upstream).models.generate_content(...)`); keep them alive.
_CLIENTS: list[genai.Client] = []


def kept(client: genai.Client) -> genai.Client:
    _CLIENTS.append(client)
    return client


def studio(upstream: SimulatedUpstream, **options: Any) -> genai.Client:
    http = types.HttpOptions(base_url=upstream.base_url, **options)
    return kept(genai.Client(api_key=KEY, http_options=http))


def vertex(upstream: SimulatedUpstream, token: str = KEY) -> genai.Client:
    """A Vertex client with project and location; its credentials are sent as a bearer."""
    return kept(
        genai.Client(
            vertexai=True,
            project="p",
            location="us-central1",
            credentials=Credentials(token=token),  # type: ignore[no-untyped-call]
            http_options=types.HttpOptions(base_url=upstream.base_url),
        )
    )


def raw(
    upstream: SimulatedUpstream,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"x-goog-api-key": KEY} if headers is None else headers
    return httpx.post(upstream.base_url + path, json=body, headers=headers, timeout=10)


def generate(upstream: SimulatedUpstream, body: Any, path: str = STUDIO) -> dict[str, Any]:
    """A generateContent answer, with the request and the answer checked against the schema."""
    validate_gemini_request(body)
    reply = raw(upstream, path + ":generateContent", body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = reply.json()
    validate_gemini_response(answer)
    return answer


def stream(upstream: SimulatedUpstream, body: Any, sse: bool = True) -> list[dict[str, Any]]:
    """The chunks of a streamGenerateContent answer, checked against the schema."""
    path = STUDIO + ":streamGenerateContent" + ("?alt=sse" if sse else "")
    reply = raw(upstream, path, body)
    assert reply.status_code == 200, reply.text
    kind = "text/event-stream" if sse else "application/json"
    assert reply.headers["content-type"].startswith(kind)
    return validate_gemini_stream(reply.content)


def refused(reply: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The error of a refused request, in Google's shape."""
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    validate_gemini_error(body)
    return body["error"]


def last_request(upstream: SimulatedUpstream) -> Any:
    return next(r for r in reversed(upstream.requests) if ":" in r.path.rsplit("/", 1)[-1])


def parts_of(answer: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = answer["candidates"][index]["content"]["parts"]
    return parts


def text_chunks(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        p["text"] for c in chunks for p in parts_of(c) if p.get("text") and not p.get("thought")
    ]
