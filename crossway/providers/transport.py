"""The pooled HTTP client a provider sends with: one aiohttp session per provider.

aiohttp's pool stays fast under concurrency where httpx's does not (see docs/performance.md).
A session belongs to the event loop that opened it, so `open()` runs at server start-up.
"""

from __future__ import annotations

import socket

import aiohttp
from yarl import URL

from crossway.errors import UpstreamError
from crossway.providers.base import Provider


class Transport:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        cfg = self.provider.config
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections,
            limit_per_host=cfg.max_connections,
            ttl_dns_cache=300,
            keepalive_timeout=30,
        )
        timeout = aiohttp.ClientTimeout(
            total=cfg.timeout.total, sock_connect=cfg.timeout.connect, sock_read=cfg.timeout.read
        )
        # the provider's headers (auth, content type) are the session's: nothing to merge per call
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=self.provider.headers,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str | URL, body: bytes) -> aiohttp.ClientResponse:
        """Send and return once the response headers are in; the caller reads and releases it."""
        if self._session is None:
            await self.open()
            assert self._session is not None
        provider = self.provider
        try:
            return await self._session.post(url, data=body)
        except TimeoutError:
            raise UpstreamError(
                f"upstream {provider.name} ({provider.vendor}) did not answer in time",
                vendor=provider.vendor,
                status=504,
                kind="upstream_timeout",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = (
                "its host name did not resolve"
                if isinstance(exc.os_error, socket.gaierror)
                else "the connection was refused or failed"
            )
            raise UpstreamError(
                f"could not reach upstream {provider.name} ({provider.vendor}): {reason}",
                vendor=provider.vendor,
                status=503,
                kind="upstream_unavailable",
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"upstream {provider.name} ({provider.vendor}) failed: "
                f"{provider.redact(type(exc).__name__ + ': ' + str(exc))}",
                vendor=provider.vendor,
                status=502,
            ) from None
