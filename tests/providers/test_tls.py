"""Upstreams over TLS: verified against a CA bundle, refused when the certificate is unknown."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import MASTER_KEY, BackgroundLoop, start_gateway

from crossway.testing import SimulatedUpstream


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_upstream(
    background: BackgroundLoop, certificate: tuple[Path, Path]
) -> Iterator[SimulatedUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    sim = SimulatedUpstream()
    background.run(sim.start(tls=context))
    yield sim
    background.run(sim.stop())


def chat(base_url: str) -> httpx.Response:
    return httpx.post(
        base_url + "/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "secure-model", "messages": [{"role": "user", "content": "hi"}]},
    )


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_upstream(
    background: BackgroundLoop,
    tls_upstream: SimulatedUpstream,
    certificate: tuple[Path, Path],
    trusted: bool,
) -> None:
    assert tls_upstream.base_url.startswith("https://")
    provider = {
        "type": "openai-compatible",
        "base_url": tls_upstream.base_url + "/v1",
        "models": ["secure-model"],
    }
    if trusted:
        provider["ca_file"] = str(certificate[0])
    gateway = start_gateway(
        background,
        {"master_key": MASTER_KEY, "log_requests": False, "providers": {"tls": provider}},
    )
    try:
        resp = chat(gateway.base_url)
        if trusted:
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"].startswith("[simulated]")
            assert chat(gateway.base_url).status_code == 200  # over the kept connection
        else:
            assert resp.status_code == 503
            assert "certificate verify failed" in resp.json()["error"]["message"]
    finally:
        gateway.stop()
