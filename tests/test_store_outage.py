"""The database goes away under a running gateway: requests go on, nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import MASTER_KEY, BackgroundLoop, RunningGateway, start_gateway, upstream_settings
from sqlalchemy.engine import make_url

from crossway.testing import SimulatedUpstream

USER = [{"role": "user", "content": "hi"}]


class Cuttable:
    """A TCP forwarder to Postgres that can be cut and restored, like a network outage.

    It keeps listening throughout (rebinding a port just released is not reliable); while
    cut it drops every connection, open or new, as a broken network would.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()
        self.cut = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        self.pipes.add(writer)
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        if self.cut:
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.pipes.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def up(self) -> None:
        self.cut = False

    async def down(self) -> None:
        self.cut = True
        for writer in list(self.pipes):
            writer.transport.abort()
        self.pipes.clear()

    async def stop(self) -> None:
        assert self.server is not None
        await self.down()
        self.server.close()


@pytest.fixture
def outage(background: BackgroundLoop, postgres_url: str) -> Iterator[Cuttable]:
    url = make_url(postgres_url)
    cut = Cuttable(url.host or "127.0.0.1", url.port or 5432)
    background.run(cut.start())
    yield cut
    with contextlib.suppress(Exception):
        background.run(cut.stop())


def test_requests_go_on_and_the_ledger_catches_up(
    background: BackgroundLoop, upstream: SimulatedUpstream, postgres_url: str, outage: Cuttable
) -> None:
    through = make_url(postgres_url).set(host="127.0.0.1", port=outage.port)
    gw: RunningGateway = start_gateway(
        background,
        upstream_settings(
            upstream.base_url, database_url=through.render_as_string(hide_password=False)
        ),
    )
    try:
        admin = {"authorization": f"Bearer {MASTER_KEY}"}
        key = httpx.post(
            gw.root + "/admin/keys",
            headers=admin,
            json={"name": f"outage-{time.time_ns()}", "limits": {"rpm": 1000}},
        ).json()
        headers = {"authorization": f"Bearer {key['key']}"}
        background.run(outage.down())
        ids = []
        for _ in range(30):
            resp = httpx.post(
                gw.base_url + "/chat/completions",
                headers=headers,
                json={"model": "gpt-4o-mini", "messages": USER},
            )
            assert resp.status_code == 200  # a known key, checked from memory
            ids.append(resp.headers["x-request-id"])
        # answered while none of their records could be written: nothing waited on them
        assert gw.services.usage.pending >= 30
        background.run(outage.up())
        # the recorder backs off between tries; ask for the next one now instead of waiting
        deadline = time.monotonic() + 20
        while gw.services.usage.pending and time.monotonic() < deadline:
            background.run(gw.services.usage.flush(force=True))
            time.sleep(0.1)
        assert gw.services.usage.pending == 0 and gw.services.usage.dropped == 0
        for rid in ids:
            record = httpx.get(gw.root + f"/admin/requests/{rid}", headers=admin)
            assert record.status_code == 200 and record.json()["key_id"] == key["id"]
    finally:
        gw.stop()


def test_an_unreachable_redis_refuses_limited_keys_with_503_not_500(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    gw = start_gateway(
        background, upstream_settings(upstream.base_url, redis_url="redis://127.0.0.1:9/0")
    )
    try:
        admin = {"authorization": f"Bearer {MASTER_KEY}"}
        limited = httpx.post(
            gw.root + "/admin/keys", headers=admin, json={"name": "limited", "limits": {"rpm": 10}}
        ).json()
        free = httpx.post(gw.root + "/admin/keys", headers=admin, json={"name": "free"}).json()
        body = {"model": "gpt-4o-mini", "messages": USER}
        refused = httpx.post(
            gw.base_url + "/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {limited['key']}"},
        )
        assert refused.status_code == 503
        assert "rate limiter cannot be reached" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "2"
        # keys without limits and the master key do not need the limiter
        for secret in (free["key"], MASTER_KEY):
            ok = httpx.post(
                gw.base_url + "/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {secret}"},
            )
            assert ok.status_code == 200
    finally:
        gw.stop()
