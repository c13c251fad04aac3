"""Fetching media by URL: the download against a hand-written server, and the SSRF guard.

The server listens on 127.0.0.1, which the guard refuses. Rather than switch the guard off
(allow_private), the positive tests name a host, `images.example`, that an injected resolver
maps to 127.0.0.1 and that the policy lets through by name (private_hosts): the guard stays on
for every other host, redirect targets included, and since `images.example` does not exist in
real DNS, a fetch that succeeds proves the connection went to the vetted address.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crossway.providers.fetch import FetchPolicy, FetchRefused, Resolver, fetch_media

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 50
HTML = b"<!doctype html><html><body>not an image</body></html>"

Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


def reply(status: str, headers: dict[str, str], body: bytes = b"") -> Route:
    """A fixed answer with a content-length."""

    async def route(writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    return route


def raw(data: bytes, *, then_hang: bool = False) -> Route:
    """Exactly these bytes, then close (or wait forever)."""

    async def route(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then_hang:
            await asyncio.Event().wait()

    return route


class Server:
    """Answers one request per connection from a table of routes; records each request."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port: int = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.requests.append(head)
            path = head.split(" ")[1].split("?")[0]
            await self.routes.get(path, reply("404 Not Found", {}))(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the fetcher hung up: what several tests want
        finally:
            writer.transport.abort()
            self.tasks.discard(task)


def resolver(table: dict[str, list[str]]) -> tuple[Resolver, list[str]]:
    """A resolver from a table, and the names it was asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve, asked


HOSTS = {
    "images.example": ["127.0.0.1"],
    "internal.example": ["10.0.0.1"],
    "public.example": ["93.184.216.34"],
}
TRUST_IMAGES = FetchPolicy(private_hosts=("images.example",))


async def fetch(
    server: Server, path: str, policy: FetchPolicy = TRUST_IMAGES, **kwargs: Any
) -> Any:
    resolve, _ = resolver(HOSTS)
    return await fetch_media(
        f"http://images.example:{server.port}{path}", policy, resolve=resolve, **kwargs
    )


async def refused(server: Server, path: str, policy: FetchPolicy = TRUST_IMAGES) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        await fetch(server, path, policy)
    return caught.value


# --- the download ---


async def test_png_is_fetched_from_the_vetted_address_with_the_original_host() -> None:
    server = await Server(
        {"/image.png": reply("200 OK", {"Content-Type": "image/png"}, PNG)}
    ).start()
    resolve, asked = resolver(HOSTS)
    try:
        got = await fetch_media(
            f"http://images.example:{server.port}/image.png?sig=a%2Fb&x=1#frag",
            TRUST_IMAGES,
            resolve=resolve,
        )
    finally:
        await server.stop()
    assert got.media_type == "image/png"
    assert got.data == PNG
    assert asked == ["images.example"]  # resolved once, connected to what it said
    head = server.requests[0]
    assert head.startswith("GET /image.png?sig=a%2Fb&x=1 HTTP/1.1\r\n")  # no fragment
    assert f"Host: images.example:{server.port}\r\n" in head
    for line in (
        "Connection: close",
        "Accept: image/*, application/pdf",
        "Accept-Encoding: identity",
        "User-Agent: Crossway",
    ):
        assert f"{line}\r\n" in head


async def test_pdf_media_type_is_stripped_of_parameters_and_lower_cased() -> None:
    route = reply("200 OK", {"Content-Type": "Application/PDF; name=doc.pdf"}, PDF)
    server = await Server({"/doc.pdf": route}).start()
    try:
        got = await fetch(server, "/doc.pdf")
    finally:
        await server.stop()
    assert (got.media_type, got.data) == ("application/pdf", PDF)


async def test_chunked_body_is_reassembled() -> None:
    pieces = [PNG[:8], PNG[8:1000], PNG[1000:]]
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await Server({"/chunked.png": raw(head + body, then_hang=True)}).start()
    try:
        got = await fetch(server, "/chunked.png")  # ends at the last chunk, not at close
    finally:
        await server.stop()
    assert got.data == PNG


async def test_body_without_length_ends_with_the_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n"
    server = await Server({"/close.png": raw(head + PNG)}).start()
    try:
        got = await fetch(server, "/close.png")
    finally:
        await server.stop()
    assert got.data == PNG


@pytest.mark.parametrize(
    "status",
    [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ],
)
async def test_redirect_is_followed(status: str) -> None:
    server = Server({"/image.png": reply("200 OK", {"Content-Type": "image/png"}, PNG)})
    await server.start()
    server.routes["/relative"] = reply(status, {"Location": "/image.png"})
    server.routes["/absolute"] = reply(
        status, {"Location": f"http://images.example:{server.port}/relative"}
    )
    try:
        got = await fetch(server, "/absolute")
    finally:
        await server.stop()
    assert got.data == PNG
    assert [r.split(" ")[1] for r in server.requests] == ["/absolute", "/relative", "/image.png"]


@pytest.mark.parametrize(
    ("location", "reason", "words"),
    [
        (
            "http://internal.example/x",
            "private",
            "images.example redirected: the URL's host internal.example resolves to a private "
            "address; Crossway does not fetch from private networks",
        ),
        ("http://169.254.169.254/latest/meta-data", "private", "is a link-local address"),
        ("http://[::1]:8080/admin", "private", "is a loopback address"),
        ("file:///etc/passwd", "url", "scheme is file"),
        ("http://nowhere.example/x", "resolve", "nowhere.example could not be resolved"),
    ],
)
async def test_redirect_target_is_vetted_again(location: str, reason: str, words: str) -> None:
    server = await Server({"/go": reply("302 Found", {"Location": location})}).start()
    resolve, asked = resolver(HOSTS)
    try:
        with pytest.raises(FetchRefused) as caught:
            await fetch_media(
                f"http://images.example:{server.port}/go", TRUST_IMAGES, resolve=resolve
            )
    finally:
        await server.stop()
    assert caught.value.reason == reason
    assert words in str(caught.value)
    assert caught.value.message.startswith("images.example redirected: ")
    assert "10.0.0.1" not in str(caught.value)  # a resolved address is never shown
    assert len(server.requests) == 1
    assert asked[0] == "images.example"


async def test_too_many_redirects() -> None:
    server = await Server({"/loop": reply("302 Found", {"Location": "/loop"})}).start()
    try:
        error = await refused(server, "/loop", FetchPolicy(private_hosts=("images.example",)))
    finally:
        await server.stop()
    assert error.reason == "redirects"
    assert str(error) == "images.example redirected more than 3 times"
    assert len(server.requests) == 4  # the first answer and three redirects followed


async def test_redirect_without_location() -> None:
    server = await Server({"/r": reply("302 Found", {})}).start()
    try:
        error = await refused(server, "/r")
    finally:
        await server.stop()
    assert (error.reason, str(error)) == (
        "status",
        "images.example answered 302 without a Location",
    )


async def test_oversize_by_content_length_is_refused_before_the_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n"
    server = await Server({"/big.png": raw(head, then_hang=True)}).start()
    policy = FetchPolicy(max_bytes=1024, timeout=2, private_hosts=("images.example",))
    started = time.monotonic()
    try:
        error = await refused(server, "/big.png", policy)
    finally:
        await server.stop()
    assert time.monotonic() - started < 1  # at the headers, not at the timeout
    assert error.reason == "size"
    assert str(error) == "the file at images.example is larger than the limit of 1024 bytes"


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversize_stream_stops_reading_early(chunked: bool) -> None:
    total = 256 * 1024 * 1024
    sent = 0

    async def endless(writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        framing = "Transfer-Encoding: chunked" if chunked else "Connection: close"
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n{framing}\r\n\r\n".encode())
        block = PNG[:8] + bytes(64 * 1024 - 8)
        if chunked:
            block = b"%x\r\n%b\r\n" % (len(block), block)
        while sent < total and not writer.is_closing():
            writer.write(block)
            sent += len(block)
            await writer.drain()

    server = await Server({"/endless.png": endless}).start()
    policy = FetchPolicy(max_bytes=100_000, private_hosts=("images.example",))
    try:
        error = await refused(server, "/endless.png", policy)
    finally:
        await server.stop()
    assert error.reason == "size"
    assert "larger than the limit of 100000 bytes" in str(error)
    # socket buffers hold a few MB: the server got nowhere near its 256 MB
    assert sent < 32 * 1024 * 1024


async def test_wrong_content_type_is_refused() -> None:
    route = reply("200 OK", {"Content-Type": "text/html; charset=utf-8"}, HTML)
    server = await Server({"/page": route}).start()
    try:
        error = await refused(server, "/page")
    finally:
        await server.stop()
    assert error.reason == "type"
    assert str(error).startswith(
        "the file at images.example has content type text/html, not one of image/png, "
    )


async def test_policy_narrows_the_types() -> None:
    route = reply("200 OK", {"Content-Type": "application/pdf"}, PDF)
    server = await Server({"/doc.pdf": route}).start()
    policy = FetchPolicy(allowed_types=("image/png",), private_hosts=("images.example",))
    try:
        error = await refused(server, "/doc.pdf", policy)
    finally:
        await server.stop()
    assert str(error).endswith("has content type application/pdf, not one of image/png")


async def test_missing_content_type_is_sniffed() -> None:
    routes = {
        "/png": reply("200 OK", {}, PNG),
        "/pdf": reply("200 OK", {}, PDF),
        "/html": reply("200 OK", {}, HTML),
        "/tiny": reply("200 OK", {}, b"GIF"),
        "/webp": reply("200 OK", {}, b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(20)),
    }
    server = await Server(routes).start()
    try:
        assert (await fetch(server, "/png")).media_type == "image/png"
        assert (await fetch(server, "/pdf")).media_type == "application/pdf"
        assert (await fetch(server, "/webp")).media_type == "image/webp"
        for path in ("/html", "/tiny"):
            error = await refused(server, path)
            assert error.reason == "type"
            assert "has no content type and is not a recognised image or PDF" in str(error)
    finally:
        await server.stop()


async def test_untyped_html_stream_is_refused_without_reading_it_all() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    server = await Server({"/html": raw(head + HTML, then_hang=True)}).start()
    try:
        error = await refused(server, "/html")  # refused at the first bytes, not at timeout
    finally:
        await server.stop()
    assert error.reason == "type"


async def test_error_status_is_named() -> None:
    server = await Server({}).start()
    try:
        error = await refused(server, "/missing.png")
    finally:
        await server.stop()
    assert (error.reason, str(error)) == ("status", "images.example answered 404")


async def test_empty_body_is_refused() -> None:
    server = await Server({"/empty": reply("200 OK", {"Content-Type": "image/png"})}).start()
    try:
        error = await refused(server, "/empty")
    finally:
        await server.stop()
    assert (error.reason, str(error)) == ("empty", "images.example answered with an empty file")


@pytest.mark.parametrize(
    ("route", "words"),
    [
        (raw(b"", then_hang=True), "images.example did not answer within 0.2 s"),
        (
            raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\x89PNG", then_hang=True),
            "images.example did not send the whole file within 0.2 s",
        ),
    ],
)
async def test_hanging_server_times_out(route: Route, words: str) -> None:
    server = await Server({"/slow": route}).start()
    policy = FetchPolicy(timeout=0.2, private_hosts=("images.example",))
    started = time.monotonic()
    try:
        error = await refused(server, "/slow", policy)
    finally:
        await server.stop()
    assert time.monotonic() - started < 1
    assert (error.reason, str(error)) == ("timeout", words)


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    resolve, _ = resolver(HOSTS)
    with pytest.raises(FetchRefused) as caught:
        await fetch_media(f"http://images.example:{port}/x", TRUST_IMAGES, resolve=resolve)
    assert caught.value.reason == "connect"
    assert str(caught.value) == "could not connect to images.example: connection refused"


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n\x89PNG\r\n\x1a\n",
            "protocol",
            "images.example closed the connection before the whole file arrived",
        ),
        (b"SMTP ready\r\n\r\n", "protocol", "images.example sent an invalid HTTP answer"),
        (b"", "protocol", "images.example closed the connection without answering"),
    ],
)
async def test_broken_answers(data: bytes, reason: str, words: str) -> None:
    server = await Server({"/x": raw(data)}).start()
    try:
        error = await refused(server, "/x")
    finally:
        await server.stop()
    assert (error.reason, str(error)) == (reason, words)


async def test_no_other_exception_escapes() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise RuntimeError("resolver bug at 10.9.8.7")

    with pytest.raises(FetchRefused) as caught:
        await fetch_media("http://public.example/x", resolve=broken)
    assert caught.value.reason == "error"
    assert str(caught.value) == "fetching the file from public.example failed"


# --- TLS: the vetted address, the URL's name for SNI and the certificate ---


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("fetch-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=images.example",
            "-addext",
            "subjectAltName=DNS:images.example",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    yield cert, key


async def test_https_verifies_the_url_host_on_the_vetted_address(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    route = reply("200 OK", {"Content-Type": "image/png"}, PNG)
    server = await Server({"/image.png": route}).start(tls=serving)
    resolve, _ = resolver({**HOSTS, "other.example": ["127.0.0.1"]})
    policy = FetchPolicy(private_hosts=("images.example", "other.example"))
    try:
        url = f"https://images.example:{server.port}/image.png"
        got = await fetch_media(url, policy, resolve=resolve, ssl_context=trusting)
        assert got.data == PNG
        # the same address under another name: the certificate is checked against the URL's
        with pytest.raises(FetchRefused) as mismatch:
            await fetch_media(
                f"https://other.example:{server.port}/image.png",
                policy,
                resolve=resolve,
                ssl_context=trusting,
            )
        assert mismatch.value.reason == "tls"
        assert "the TLS certificate of other.example could not be verified" in str(mismatch.value)
        with pytest.raises(FetchRefused) as unknown:  # the system CAs do not know it
            await fetch_media(url, policy, resolve=resolve)
        assert unknown.value.reason == "tls"
    finally:
        await server.stop()


# --- the guard: refused before any connection ---


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records connection attempts instead of making them: the guard tests need no network."""
    attempts: list[dict[str, Any]] = []

    async def open_connection(host: str, port: int, **kwargs: Any) -> Any:
        attempts.append({"host": host, "port": port, **kwargs})
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed ({host}, {port})")

    monkeypatch.setattr(asyncio, "open_connection", open_connection)
    return attempts


PUBLIC = "93.184.216.34"
GUARD_HOSTS = {
    "example.com": [PUBLIC],
    "loopback.example": ["127.0.0.1"],
    "mixed.example": [PUBLIC, "10.0.0.7", "2606:2800:220:1::1"],
    "mixed6.example": ["2606:2800:220:1::1", "fd12:3456::1"],
    "metadata.example": ["169.254.169.254"],
    "garbage.example": ["not-an-address"],
    "empty.example": [],
}


@pytest.mark.parametrize(
    ("url", "reason", "words"),
    [
        ("http://127.0.0.1/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://localhost/x", "private", "host localhost is a loopback name"),
        ("http://api.localhost./x", "private", "is a loopback name"),
        ("http://10.1.2.3/x", "private", "host 10.1.2.3 is a private address"),
        ("http://192.168.1.1./x", "private", "is a private address"),
        ("http://169.254.169.254/latest/meta-data", "private", "is a link-local address"),
        ("http://[::1]/x", "private", "host ::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/x", "private", "is an IPv4-mapped form of a loopback address"),
        ("http://[::ffff:a00:1]:8080/x", "private", "is an IPv4-mapped form of a private address"),
        ("http://[2002:7f00:1::]/x", "private", "is a 6to4 form of a loopback address"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x", "private", "is a Teredo form of"),
        ("http://[64:ff9b::a00:1]/x", "private", "is a NAT64 form of a private address"),
        ("http://[fe80::1%25eth0]/x", "private", "is a link-local address"),
        ("http://[fd00::1]/x", "private", "is a private address"),
        ("http://[ff02::1]/x", "private", "is a multicast address"),
        ("http://224.0.0.1/x", "private", "is a multicast address"),
        ("http://100.64.0.1/x", "private", "is a carrier-grade NAT address"),
        ("http://0.0.0.0/x", "private", "is an unspecified address"),
        ("http://[::]/x", "private", "is an unspecified address"),
        ("http://2130706433/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://0x7f000001/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://0x7f.1/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://127.1/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://0177.0.0.1/x", "private", "host 127.0.0.1 is a loopback address"),
        ("http://0/x", "private", "host 0.0.0.0 is an unspecified address"),
        (
            "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/x",
            "private",
            "host 127.0.0.1 is a loopback address",
        ),
        ("http://loopback.example/x", "private", "loopback.example resolves to a loopback"),
        ("http://metadata.example/x", "private", "resolves to a link-local address"),
        ("http://mixed.example/x", "private", "mixed.example resolves to a private address"),
        ("http://mixed6.example/x", "private", "mixed6.example resolves to a private address"),
        ("http://1.2.3.4.5/x", "url", "looks like an IP address but is not one"),
        ("http://08.0.0.1/x", "url", "looks like an IP address but is not one"),
        ("http://0x/x", "url", "looks like an IP address but is not one"),
        ("http://1.2.3.256/x", "url", "looks like an IP address but is not one"),
        ("http://example.123/x", "url", "looks like an IP address but is not one"),
        ("ftp://example.com/x", "url", "scheme is ftp; Crossway fetches only http and https"),
        ("file:///etc/passwd", "url", "scheme is file"),
        ("gopher://example.com:70/_x", "url", "scheme is gopher"),
        ("//example.com/x", "url", "the URL has no scheme"),
        ("http://user:pw@example.com/x", "url", "carries a user name or password"),
        ("http://user@example.com/x", "url", "carries a user name or password"),
        ("http://example.com\\@10.0.0.1/x", "url", "carries a user name or password"),
        ("http:///x", "url", "the URL has no host"),
        ("http://example.com/" + "a" * 9000, "url", "the URL is longer than 8192 characters"),
        ("http://exa mple.com/x", "url", "spaces or control characters"),
        ("http://example.com/x\r\nHost: evil", "url", "spaces or control characters"),
        ("http://example.com:99999/x", "url", "the URL is not valid"),
        ("http://example.com:0/x", "url", "the URL's port is not valid"),
        ("http://[v1.fe]/x", "url", "not a valid IPv6 address"),
        ("http://ex$ample.com/x", "url", "not a valid host name"),
        ("http://nowhere.example/x", "resolve", "host nowhere.example could not be resolved"),
        ("http://garbage.example/x", "resolve", "could not be resolved"),
        ("http://empty.example/x", "resolve", "could not be resolved"),
    ],
)
async def test_guard_refuses(
    url: str, reason: str, words: str, connects: list[dict[str, Any]]
) -> None:
    resolve, _ = resolver(GUARD_HOSTS)
    with pytest.raises(FetchRefused) as caught:
        await fetch_media(url, resolve=resolve)
    assert caught.value.reason == reason
    assert words in str(caught.value)
    assert connects == []
    for secret in ("10.0.0.7", "fd12", "169.254.169.254", "pw"):
        if secret not in url:
            assert secret not in str(caught.value)  # resolved addresses stay private


async def test_localhost_is_refused_with_the_system_resolver(
    connects: list[dict[str, Any]],
) -> None:
    with pytest.raises(FetchRefused) as caught:
        await fetch_media("http://localhost:8080/x")
    assert caught.value.reason == "private"
    assert connects == []


@pytest.mark.parametrize(
    ("url", "address", "tls_name"),
    [
        ("https://example.com/x", PUBLIC, "example.com"),  # the name resolved once, then its IP
        ("http://93.184.216.34:8080/x", PUBLIC, None),
        ("http://[64:ff9b::5db8:d822]/x", "64:ff9b::5db8:d822", None),  # DNS64: public inside
        ("https://[2606:2800:220:1::1]/x", "2606:2800:220:1::1", "2606:2800:220:1::1"),
    ],
)
async def test_public_addresses_pass_and_are_connected_to_directly(
    url: str, address: str, tls_name: str | None, connects: list[dict[str, Any]]
) -> None:
    resolve, asked = resolver(GUARD_HOSTS)
    with pytest.raises(FetchRefused) as caught:
        await fetch_media(url, resolve=resolve)
    assert caught.value.reason == "connect"  # past the guard; the fake connect refused
    if address not in url:
        assert address not in str(caught.value)  # only the URL's host is named
    [attempt] = connects
    assert attempt["host"] == address
    assert attempt["server_hostname"] == tls_name
    assert attempt["flags"] == socket.AI_NUMERICHOST  # no second resolution
    assert asked == (["example.com"] if "example.com" in url else [])


async def test_every_vetted_address_is_tried(connects: list[dict[str, Any]]) -> None:
    resolve, _ = resolver({"two.example": [PUBLIC, "2606:2800:220:1::1"]})
    with pytest.raises(FetchRefused):
        await fetch_media("http://two.example/x", resolve=resolve)
    assert [a["host"] for a in connects] == [PUBLIC, "2606:2800:220:1::1"]


async def test_operators_may_allow_private_hosts(connects: list[dict[str, Any]]) -> None:
    resolve, _ = resolver(GUARD_HOSTS)
    named = FetchPolicy(private_hosts=("10.0.0.5", "Loopback.Example."))
    for url in ("http://10.0.0.5/x", "http://loopback.example/x"):
        with pytest.raises(FetchRefused) as caught:
            await fetch_media(url, named, resolve=resolve)
        assert caught.value.reason == "connect"
    with pytest.raises(FetchRefused) as other:
        await fetch_media("http://10.0.0.6/x", named, resolve=resolve)
    assert other.value.reason == "private"
    with pytest.raises(FetchRefused) as anything:
        await fetch_media("http://10.0.0.6/x", FetchPolicy(allow_private=True), resolve=resolve)
    assert anything.value.reason == "connect"
    assert [a["host"] for a in connects] == ["10.0.0.5", "127.0.0.1", "10.0.0.6"]


def test_fetched_repr_leaves_out_the_bytes() -> None:
    from crossway.providers.fetch import Fetched

    assert repr(Fetched("image/png", PNG)) == "Fetched(media_type='image/png')"
