"""Fetch an image or PDF given by URL, for upstreams that take only inline bytes.

Google AI Studio's Gemini API cannot read a file by URL, so the gateway downloads it. A
gateway that fetches URLs chosen by its callers is a server-side request forgery risk: a
caller could point it at the cloud metadata service, at loopback admin ports or at anything
else on the operator's network. So every URL, the first and each redirect's, is vetted from
scratch: http(s) only, no credentials, the host resolved exactly once and refused when any of
its addresses is not public. The connection then goes to the vetted address itself, so DNS
cannot answer differently between the check and the connect (DNS rebinding).

The download is bounded in time (the whole fetch), in size (never more than the limit plus
one read held in memory) and in type (an allow-list of media types). Every failure comes out
as `FetchRefused`, whose message is safe to show the caller: it names the URL's host and the
reason, never a resolved address, a query string or a stack trace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Final
from urllib.parse import quote, urljoin, urlsplit

import httptools

log = logging.getLogger("crossway.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the host's addresses as strings; injectable so tests need no DNS
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_READ: Final = 64 * 1024
_MAX_URL: Final = 8192  # what common servers accept in a request line
_SNIFF: Final = 12  # bytes enough to recognise every sniffed format (WebP needs 12)
_PRIVATE: Final = "Crossway does not fetch from private networks"
_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_HEX_LABEL: Final = re.compile(r"0x[0-9a-f]*")
# characters left as they are in a request target; anything else (non-ASCII) is %-encoded
_TARGET_SAFE: Final = "!$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0  # the whole fetch: resolution, connect, every redirect, last byte
    allowed_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/heic",
        "image/heif",
        "application/pdf",
    )
    allow_private: bool = False  # operators may allow internal hosts explicitly
    max_redirects: int = 3
    # Hosts (names as written in URLs, or IP addresses) allowed to be on a private network
    # even when allow_private is False: an operator's own bucket, without opening the rest.
    private_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fetched:
    media_type: str  # from the response's content-type, parameters stripped, lower-case
    data: bytes = field(repr=False)  # up to max_bytes: too long to print


class FetchRefused(Exception):
    """The file could not or may not be fetched; the message is safe to show the caller.

    `reason` is a short code for programs: url, private, resolve, connect, tls, protocol,
    status, redirects, size, type, empty, timeout or error.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


_DEFAULT_POLICY: Final = FetchPolicy()


async def fetch_media(
    url: str,
    policy: FetchPolicy = _DEFAULT_POLICY,
    *,
    resolve: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Fetched:
    """GET `url` (following vetted redirects) and return its bytes and media type.

    `resolve` replaces the event loop's getaddrinfo; `ssl_context` the default verifying
    context (for an operator's own CA bundle).
    """
    state = _State()
    try:
        async with asyncio.timeout(policy.timeout):
            return await _fetch(url, policy, resolve or _system_resolve, ssl_context, state)
    except FetchRefused:
        raise
    except TimeoutError:
        what = "send the whole file" if state.answered else "answer"
        raise FetchRefused(
            f"{state.host} did not {what} within {policy.timeout:g} s", "timeout"
        ) from None
    except Exception:
        # a bug or an injected resolver's failure: logged here, never shown to the caller
        log.warning("fetching media from %s failed unexpectedly", state.host, exc_info=True)
        raise FetchRefused(f"fetching the file from {state.host} failed", "error") from None


@dataclass(slots=True)
class _State:
    """What the timeout message needs to know about where the fetch got to."""

    host: str = "the URL's host"
    answered: bool = False


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # lower-case ASCII, no brackets or trailing dot: for messages and allow-lists
    port: int
    literal: IPAddress | None  # the host when the URL gives an address, not a name
    lookup: str  # what to resolve (the name as written, trailing dot kept)
    host_header: str
    tls_name: str
    target: str  # path and query, the request line's target


async def _fetch(
    url: str,
    policy: FetchPolicy,
    resolve: Resolver,
    ssl_context: ssl.SSLContext | None,
    state: _State,
) -> Fetched:
    current = url
    came_from: str | None = None
    for _ in range(policy.max_redirects + 1):
        try:
            target = _parse_url(current)
            state.host, state.answered = target.host, False
            addresses = await _vet(target, policy, resolve)
        except FetchRefused as exc:
            if came_from is None:
                raise
            # say that a redirect led there, or the caller sees a host it never named
            raise FetchRefused(f"{came_from} redirected: {exc.message}", exc.reason) from None
        outcome = await _get(target, addresses, policy, ssl_context, state)
        if isinstance(outcome, Fetched):
            return outcome
        came_from, current = target.host, urljoin(current, outcome)
    raise FetchRefused(
        f"{state.host} redirected more than {policy.max_redirects} times", "redirects"
    )


# --- the URL ---


def _parse_url(url: str) -> _Target:
    if len(url) > _MAX_URL:
        raise FetchRefused(f"the URL is longer than {_MAX_URL} characters", "url")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        # urlsplit drops some of these silently; a URL that needs them is not one to trust
        raise FetchRefused("the URL contains spaces or control characters", "url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchRefused("the URL is not valid", "url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"the URL's scheme is {scheme[:20]}" if scheme else "the URL has no scheme"
        raise FetchRefused(f"{shown}; Crossway fetches only http and https", "url")
    if "@" in parts.netloc:
        raise FetchRefused(
            "the URL carries a user name or password; Crossway does not send credentials", "url"
        )
    raw = parts.hostname
    if not raw:
        raise FetchRefused("the URL has no host", "url")
    default_port = 443 if scheme == "https" else 80
    if port is None:
        port = default_port
    if port == 0:
        raise FetchRefused("the URL's port is not valid", "url")

    literal: IPAddress | None
    if parts.netloc.startswith("["):
        try:
            # a zone is written %25 in a URL (RFC 6874) but % to the socket layer
            literal = ipaddress.IPv6Address(raw.replace("%25", "%", 1))
        except ValueError:
            raise FetchRefused("the URL's host is not a valid IPv6 address", "url") from None
        host = lookup = str(literal).split("%")[0]
        host_name = f"[{host}]"
    else:
        try:
            # IDNA also folds full-width digits and dots, so do it before the numeric check
            lookup = raw.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise FetchRefused("the URL's host is not a valid host name", "url") from None
        if not _HOST_NAME.fullmatch(lookup):
            raise FetchRefused("the URL's host is not a valid host name", "url")
        host = lookup.removesuffix(".")
        literal = _numeric_host(host)
        if literal is not None:
            host = lookup = str(literal)
        host_name = lookup
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    query = f"?{quote(parts.query, safe=_TARGET_SAFE)}" if parts.query else ""
    return _Target(
        scheme=scheme,
        host=host,
        port=port,
        literal=literal,
        lookup=lookup,
        host_header=host_name if port == default_port else f"{host_name}:{port}",
        tls_name=host,
        target=path + query,
    )


def _numeric_host(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric-looking host stands for, as browsers and inet_aton read it.

    A host whose last label is a number (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`) is an
    address, not a name: resolvers would treat it so, and so must the guard. One that looks
    numeric but does not parse cleanly is refused rather than guessed at.
    """
    last = host.rsplit(".", 1)[-1]
    if not (last.isdigit() or _HEX_LABEL.fullmatch(last)):
        return None  # a name: TLDs are never numeric
    refused = FetchRefused(f"the URL's host {host} looks like an IP address but is not one", "url")
    labels = host.split(".")
    if len(labels) > 4:
        raise refused
    numbers: list[int] = []
    for label in labels:
        try:
            if label.startswith("0x"):
                numbers.append(int(label[2:], 16))
            elif len(label) > 1 and label.startswith("0"):
                numbers.append(int(label[1:], 8))
            else:
                numbers.append(int(label, 10))
        except ValueError:
            raise refused from None
    # every label but the last is one byte; the last fills the bytes that remain
    *head, tail = numbers
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(numbers)):
        raise refused
    value = tail
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


# --- the addresses ---


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _vet(target: _Target, policy: FetchPolicy, resolve: Resolver) -> list[IPAddress]:
    """The addresses to connect to, refused when any of them is not public."""
    trusted = _private_allowed(target, policy)
    if target.literal is not None:
        kind = _forbidden(target.literal)
        if kind and not trusted:
            raise FetchRefused(f"the URL's host {target.host} is {kind}; {_PRIVATE}", "private")
        return [target.literal]
    if not trusted and (target.host == "localhost" or target.host.endswith(".localhost")):
        # RFC 6761: such names are loopback whatever a resolver may say
        raise FetchRefused(
            f"the URL's host {target.host} is a loopback name; {_PRIVATE}", "private"
        )
    try:
        answers = await resolve(target.lookup, target.port)
    except OSError:
        answers = []
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            raise FetchRefused(
                f"the URL's host {target.host} could not be resolved", "resolve"
            ) from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchRefused(f"the URL's host {target.host} could not be resolved", "resolve")
    if not trusted:
        for address in addresses:
            # ANY bad address refuses: the connect could be steered to any of them
            kind = _forbidden(address)
            if kind:
                # the address itself stays out: it would map the operator's network
                raise FetchRefused(
                    f"the URL's host {target.host} resolves to {kind}; {_PRIVATE}", "private"
                )
    return addresses


def _private_allowed(target: _Target, policy: FetchPolicy) -> bool:
    if policy.allow_private:
        return True
    for entry in policy.private_hosts:
        name = entry.strip().lower().removesuffix(".")
        try:
            address: IPAddress | None = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            address = None
        if name == target.host or (address is not None and address == target.literal):
            return True
    return False


def _forbidden(address: IPAddress) -> str | None:
    """What makes an address one not to fetch from ("a private address"), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address: judge the IPv4 one
        if address.ipv4_mapped is not None:
            kind = _forbidden(address.ipv4_mapped)
            return f"an IPv4-mapped form of {kind}" if kind else None
        if address.sixtofour is not None:
            kind = _forbidden(address.sixtofour)
            if kind:
                return f"a 6to4 form of {kind}"
        if address.teredo is not None:
            server, client = address.teredo
            kind = _forbidden(client) or _forbidden(server)
            if kind:
                return f"a Teredo form of {kind}"
        if address in _NAT64:
            # DNS64 names public IPv4 hosts this way: the embedded address decides
            kind = _forbidden(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return f"a NAT64 form of {kind}" if kind else None
        if address.is_site_local:
            return "a site-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


# --- the exchange ---


@cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # loading the CA store is slow: once per process


async def _connect(
    target: _Target, addresses: list[IPAddress], ssl_context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tls = (ssl_context or _default_tls()) if target.scheme == "https" else None
    error: OSError | None = None
    for address in addresses:  # all vetted: try each until one answers
        try:
            return await asyncio.open_connection(
                str(address),
                target.port,
                ssl=tls,
                server_hostname=target.tls_name if tls else None,
                flags=socket.AI_NUMERICHOST,  # the vetted address, never a second lookup
            )
        except ssl.SSLCertVerificationError as exc:
            raise FetchRefused(
                f"the TLS certificate of {target.host} could not be verified: {exc.verify_message}",
                "tls",
            ) from None
        except ssl.SSLError:
            raise FetchRefused(f"the TLS handshake with {target.host} failed", "tls") from None
        except OSError as exc:
            error = exc
    # asyncio's own messages name the address tried: only the errno's words are shown
    why = os.strerror(error.errno) if error is not None and error.errno else "connection failed"
    raise FetchRefused(f"could not connect to {target.host}: {why.lower()}", "connect")


class _Answer:
    """httptools callbacks: the headers, and the body as long as it stays within the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.body: list[bytes] = []
        self.size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= self.limit:  # past it the fetch is refused: keep nothing more
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


async def _get(
    target: _Target,
    addresses: list[IPAddress],
    policy: FetchPolicy,
    ssl_context: ssl.SSLContext | None,
    state: _State,
) -> Fetched | str:
    """One GET: the file, or a redirect's Location."""
    reader, writer = await _connect(target, addresses, ssl_context)
    try:
        head = (
            f"GET {target.target} HTTP/1.1\r\n"
            f"Host: {target.host_header}\r\n"
            "User-Agent: Crossway\r\n"
            "Accept: image/*, application/pdf\r\n"
            "Accept-Encoding: identity\r\n"
            "Connection: close\r\n"
            "\r\n"
        )
        writer.write(head.encode("ascii"))
        await writer.drain()
        return await _read(reader, target, policy, state)
    except OSError:  # reset, TLS failure mid-stream; never the fetch's own timeout
        raise FetchRefused(
            f"the connection to {target.host} broke before the whole file arrived", "connect"
        ) from None
    finally:
        writer.transport.abort()  # Connection: close, and stop a server sending too much


async def _read(
    reader: asyncio.StreamReader, target: _Target, policy: FetchPolicy, state: _State
) -> Fetched | str:
    host = target.host
    answer = _Answer(policy.max_bytes)
    parser = httptools.HttpResponseParser(answer)
    declared: str | None = None  # the media type the headers give, if any
    sniffed = False
    while True:
        data = await reader.read(_READ)
        if not data:
            break
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise FetchRefused(f"{host} switched protocols", "protocol") from None
        except httptools.HttpParserError:
            raise FetchRefused(f"{host} sent an invalid HTTP answer", "protocol") from None
        if answer.headers_done and not state.answered:
            state.answered = True
            redirect = _judge_head(parser.get_status_code(), answer.headers, host, policy)
            if redirect is not None:
                return redirect
            declared = _media_type(answer.headers.get("content-type", ""))
        if answer.size > policy.max_bytes:
            raise _too_large(host, policy)
        if answer.complete:
            break
        if state.answered and not declared and not sniffed and answer.size >= _SNIFF:
            sniffed = True  # refuse an untyped HTML page now, not after max_bytes of it
            _sniffed(b"".join(answer.body)[:_SNIFF], host, policy)
    if not answer.headers_done:
        raise FetchRefused(f"{host} closed the connection without answering", "protocol")
    framed = "content-length" in answer.headers or "transfer-encoding" in answer.headers
    if not answer.complete and framed:
        # without a length or chunks, the end of the connection is the end of the body
        raise FetchRefused(
            f"{host} closed the connection before the whole file arrived", "protocol"
        )
    data = b"".join(answer.body)
    if not data:
        raise FetchRefused(f"{host} answered with an empty file", "empty")
    return Fetched(declared or _sniffed(data, host, policy), data)


def _judge_head(status: int, headers: dict[str, str], host: str, policy: FetchPolicy) -> str | None:
    """Refuse on the headers alone when they suffice; a redirect's Location if there is one."""
    if status in _REDIRECTS:
        location = headers.get("location")
        if not location:
            raise FetchRefused(f"{host} answered {status} without a Location", "status")
        return location
    if not 200 <= status < 300:
        raise FetchRefused(f"{host} answered {status}", "status")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        length = 0  # the parser refuses a bad length itself
    if length > policy.max_bytes:
        raise _too_large(host, policy)  # before a byte of the body is read
    declared = _media_type(headers.get("content-type", ""))
    if declared and declared not in policy.allowed_types:
        raise _wrong_type(host, declared, policy)
    return None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _sniffed(data: bytes, host: str, policy: FetchPolicy) -> str:
    """The media type the magic bytes show, when the server gave none."""
    kind: str | None = None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        kind = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        kind = "image/jpeg"
    elif data.startswith((b"GIF87a", b"GIF89a")):
        kind = "image/gif"
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        kind = "image/webp"
    elif data.startswith(b"%PDF-"):
        kind = "application/pdf"
    if kind is None:
        raise FetchRefused(
            f"the file at {host} has no content type and is not a recognised image or PDF",
            "type",
        )
    if kind not in policy.allowed_types:
        raise _wrong_type(host, kind, policy)
    return kind


def _too_large(host: str, policy: FetchPolicy) -> FetchRefused:
    return FetchRefused(
        f"the file at {host} is larger than the limit of {policy.max_bytes} bytes", "size"
    )


def _wrong_type(host: str, media_type: str, policy: FetchPolicy) -> FetchRefused:
    allowed = ", ".join(policy.allowed_types)
    return FetchRefused(
        f"the file at {host} has content type {media_type[:100]}, not one of {allowed}", "type"
    )
