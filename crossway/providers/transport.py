"""How a provider sends: a keep-alive pool per upstream origin, behind one small interface.

`post()` returns once the answer's headers are in; the caller reads the body whole or as a
stream and releases it. Failures come out as `UpstreamError`s that name the provider (never its
key): connect failures 503, timeouts 504, broken connections 502.
"""

from __future__ import annotations

import ssl

from yarl import URL

from crossway.errors import UpstreamError
from crossway.providers.base import Provider
from crossway.providers.http1 import (
    ConnectFailed,
    ConnectionBroken,
    Pool,
    ReadTimeout,
    Response,
    request_head,
)

# answers uncompressed: on the paths Crossway relays, CPU costs more than bytes
_DEFAULT_HEADERS = {"accept-encoding": "identity"}


class Transport:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._pools: dict[tuple[str, str, int | None], Pool] = {}
        self._heads: dict[URL, tuple[Pool, bytes]] = {}

    async def open(self) -> None:
        """Connections are made on first use, in the serving loop."""

    def busy_connections(self) -> int:
        """Connections taken for a request whose answer is not done: 0 when nothing leaks."""
        return sum(pool.busy for pool in self._pools.values())

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._heads.clear()

    def _prepared(self, url: URL) -> tuple[Pool, bytes]:
        found = self._heads.get(url)
        if found is None:
            origin = (url.scheme, url.raw_host or "", url.port)
            pool = self._pools.get(origin)
            if pool is None:
                config = self.provider.config
                context = (
                    ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
                )
                pool = Pool(
                    url,
                    connect_timeout=config.timeout.connect,
                    read_timeout=config.timeout.read,
                    total_timeout=config.timeout.total,
                    first_byte_timeout=config.timeout.first_byte,
                    max_idle=config.max_connections,
                    ssl_context=context,
                )
                self._pools[origin] = pool
            head = request_head(
                url, pool.host_header, {**_DEFAULT_HEADERS, **self.provider.headers}, 0
            )
            # everything but the length, which changes per request
            found = (pool, head[: head.rindex(b"content-length:")])
            self._heads[url] = found
        return found

    async def post(
        self, url: URL, body: bytes | list[bytes | memoryview], extra_headers: bytes = b""
    ) -> Response:
        """`extra_headers`: raw `name: value\r\n` lines for this request only. `body` may be
        a list of pieces (an upload, sent without joining it into a second copy)."""
        pool, prefix = self._prepared(url)
        length = len(body) if isinstance(body, bytes) else sum(len(p) for p in body)
        if extra_headers.startswith(b"content-type:"):  # an upload's own (multipart) type
            prefix = prefix.replace(b"content-type: application/json\r\n", b"", 1)
        head = prefix + extra_headers + b"content-length: %d\r\n\r\n" % length
        provider = self.provider
        who = f"{provider.name} ({provider.vendor})"
        try:
            return await pool.request(head, body)
        except ReadTimeout:
            raise UpstreamError(
                f"upstream {who} did not answer in time",
                vendor=provider.vendor,
                status=504,
                kind="upstream_timeout",
            ) from None
        except ConnectFailed as exc:
            reason = "its host name did not resolve" if exc.dns else f"the connection failed: {exc}"
            raise UpstreamError(
                f"could not reach upstream {who}: {reason}",
                vendor=provider.vendor,
                status=503,
                kind="upstream_unavailable",
            ) from None
        except ConnectionBroken as exc:
            raise UpstreamError(
                f"upstream {who} failed: {provider.redact(str(exc))}",
                vendor=provider.vendor,
                status=502,
            ) from None


__all__ = ["Response", "Transport"]
