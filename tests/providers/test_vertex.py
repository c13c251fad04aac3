"""Vertex AI with a service account: the token is fetched through google-auth, reused while
fresh, refreshed when it expires, and a token endpoint that fails is a 503, not a crash.

The service account's key is generated here and its `token_uri` points at a small token
endpoint on loopback, so the OAuth exchange really happens, with no network.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import UPSTREAM_KEY, BackgroundLoop, RunningGateway, start_gateway, upstream_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crossway.testing import SimulatedUpstream


class TokenEndpoint:
    def __init__(self) -> None:
        self.grants = 0
        self.url = ""
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        form = (await reader.readexactly(length)).decode()
        ok = "grant_type=urn" in form and "assertion=" in form  # a signed JWT grant
        self.grants += ok
        body = json.dumps(
            {"access_token": UPSTREAM_KEY, "expires_in": 3600, "token_type": "Bearer"}
            if ok
            else {"error": "invalid_grant"}
        ).encode()
        status = b"200 OK" if ok else b"400 Bad Request"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        writer.close()


def service_account(folder: Path, token_uri: str) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = folder / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "crossway-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "gateway@crossway-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def vertex(
    background: BackgroundLoop,
    upstream: SimulatedUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningGateway, TokenEndpoint]]:
    tokens = TokenEndpoint()

    async def start() -> str:
        tokens.server = await asyncio.start_server(tokens.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{tokens.server.sockets[0].getsockname()[1]}/token"

    token_uri = background.run(start())
    folder = tmp_path_factory.mktemp("vertex")
    good = service_account(folder, token_uri)
    bad_folder = folder / "bad"
    bad_folder.mkdir()
    bad = service_account(bad_folder, "http://127.0.0.1:9/token")  # nothing listens there
    common: dict[str, Any] = {
        "type": "vertex",
        "project": "crossway-test",
        "location": "europe-west4",
        "base_url": upstream.base_url,
        "catalog_models": False,
    }
    settings = upstream_settings(
        upstream.base_url,
        providers={
            "vertex-sa": {
                **common,
                "credentials_file": str(good),
                "models": {"gemini-sa": "gemini-2.5-flash"},
            },
            "vertex-broken": {
                **common,
                "credentials_file": str(bad),
                "models": {"gemini-nokey": "gemini-2.5-flash"},
            },
        },
        models={},
        aliases={},
        routing={"retries": 0},
    )
    running = start_gateway(background, settings)
    yield running, tokens
    running.stop()

    async def stop() -> None:
        assert tokens.server is not None
        tokens.server.close()

    background.run(stop())


def test_a_service_account_token_is_fetched_reused_and_refreshed(
    vertex: tuple[RunningGateway, TokenEndpoint], upstream: SimulatedUpstream
) -> None:
    gw, tokens = vertex
    client = gw.client()
    ask = {"model": "gemini-sa", "messages": [{"role": "user", "content": "hello vertex"}]}
    answer = client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert "hello vertex" in answer.choices[0].message.content
    sent = next(r for r in reversed(upstream.requests) if ":generateContent" in r.path)
    assert sent.path == (
        "/v1/projects/crossway-test/locations/europe-west4/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert tokens.grants == 1
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert tokens.grants == 1  # still fresh: reused
    provider = gw.services.table.deployments["gemini-sa"][0].provider
    provider._credentials.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # type: ignore[attr-defined]
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert tokens.grants == 2  # refreshed a minute before expiry (here: at it)


def test_a_token_endpoint_that_fails_is_a_503(vertex: tuple[RunningGateway, TokenEndpoint]) -> None:
    gw, _ = vertex
    with pytest.raises(openai.APIStatusError) as failed:
        gw.client().chat.completions.create(
            model="gemini-nokey", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code == 503
    assert "Vertex AI access token" in str(failed.value)
