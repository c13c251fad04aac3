"""Shared fixtures: the simulated upstream and Crossway, both real servers on loopback.

They run in one background event loop thread, so tests can drive them through the official
(blocking or async) SDKs exactly as a user would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import openai
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from crossway.api.auth import hash_key
from crossway.api.services import Services
from crossway.app import MasterKey, build_services, create_app
from crossway.config import Settings, check_references
from crossway.server.serve import Server
from crossway.store.migrate import upgrade
from crossway.testing import SimulatedUpstream
from crossway.usage import MemoryWriter, UsageEvent

T = TypeVar("T")
MASTER_KEY = "sk-test-master"
UPSTREAM_KEY = "sk-upstream-secret-123"


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def upstream(background: BackgroundLoop) -> Iterator[SimulatedUpstream]:
    sim = SimulatedUpstream(api_keys={UPSTREAM_KEY}, open_prefixes=("/local/",))
    background.run(sim.start())
    yield sim
    background.run(sim.stop())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GatewayServer(Protocol):
    """How a test starts and stops the HTTP server of a gateway."""

    port: int

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class UvicornServer:
    """uvicorn in the tests' loop, for the suite that runs over every server."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        task = self.task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway did not start")
            await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@dataclass
class RunningGateway:
    base_url: str  # ends with /v1
    services: Services
    usage: MemoryWriter
    server: GatewayServer
    background: BackgroundLoop
    backend: str = "sqlite+memory"

    @property
    def root(self) -> str:
        return self.base_url[: -len("/v1")]

    def client(self, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.base_url, api_key=MASTER_KEY, **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=MASTER_KEY, **kwargs)

    def event(self, request_id: str, timeout: float = 5.0) -> UsageEvent:
        """The usage event of one request, once the recorder has written it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.usage.find(request_id)
            if found is not None:
                return found
            time.sleep(0.01)
        raise AssertionError(f"no usage event for {request_id}")

    def stop(self) -> None:
        """Shut down as SIGTERM would: lifespan shutdown flushes usage, closes pools."""
        self.background.run(self.server.shutdown())


def upstream_settings(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    """Every vendor pointed at the simulated upstream (it speaks OpenAI's, Anthropic's and
    Gemini's formats)."""
    key = UPSTREAM_KEY
    data: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "log_requests": False,
        "providers": {
            "openai": {"type": "openai", "api_key": key, "base_url": f"{upstream_url}/v1"},
            "anthropic": {"type": "anthropic", "api_key": key, "base_url": upstream_url},
            "google": {"type": "google", "api_key": key, "base_url": upstream_url},
            "vertex": {
                "type": "vertex",
                "api_key": key,  # Vertex's API-key mode: /v1/publishers/google/models/...
                "base_url": upstream_url,
                "models": {"gemini-on-vertex": "gemini-2.5-flash"},
                "catalog_models": False,
            },
            "azure-eu": {
                "type": "azure",
                "api_key": key,
                "base_url": f"{upstream_url}/azure",
                "api_version": "2024-10-21",
                "models": {"gpt-4o": "gpt4o-prod"},
            },
            "deepseek": {
                "type": "deepseek",
                "api_key": key,
                "base_url": f"{upstream_url}/deepseek/v1",
            },
            "mistral": {
                "type": "mistral",
                "api_key": key,
                "base_url": f"{upstream_url}/mistral/v1",
            },
            "x": {"type": "x", "api_key": key, "base_url": f"{upstream_url}/xai/v1"},
            "volcengine": {
                "type": "volcengine",
                "api_key": key,
                "base_url": f"{upstream_url}/api/v3",
            },
            "local": {
                "type": "openai-compatible",
                "base_url": f"{upstream_url}/local/v1",
                "models": ["llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B"],
            },
            "dead": {
                "type": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "models": ["dead-model"],
                "timeout": {"connect": 2},
            },
        },
        "models": {
            "balanced": {
                "deployments": [
                    {"provider": "openai", "model": "gpt-4o-mini"},
                    {"provider": "deepseek", "model": "deepseek-chat"},
                ],
                "aliases": ["team-default"],
            },
        },
        "aliases": {"fast": "gpt-4o-mini"},
    }
    data.update(overrides)
    return data


def start_gateway(
    background: BackgroundLoop, settings_data: dict[str, Any], server_name: str = "builtin"
) -> RunningGateway:
    """A gateway on a free port, on Crossway's own server unless told `uvicorn`; its database
    (a fresh SQLite file unless the settings name one) is migrated first, as `crossway serve`
    does."""
    settings_data = dict(settings_data)
    if "database_url" not in settings_data:
        folder = tempfile.mkdtemp(prefix="crossway-test-")
        settings_data["database_url"] = f"sqlite:///{folder}/crossway.db"
    upgrade(settings_data["database_url"])
    settings = Settings.model_validate(settings_data)
    check_references(settings)
    memory = MemoryWriter()
    services = build_services(settings, MasterKey(hash_key(MASTER_KEY), "test"), [memory])
    app = create_app(services)
    server: GatewayServer = UvicornServer(app) if server_name == "uvicorn" else Server(app, port=0)
    background.run(server.start())
    url = f"http://127.0.0.1:{server.port}/v1"
    return RunningGateway(url, services, memory, server, background)


@pytest.fixture(scope="session")
def gateway(background: BackgroundLoop, upstream: SimulatedUpstream) -> Iterator[RunningGateway]:
    running = start_gateway(background, upstream_settings(upstream.base_url))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def faulty_gateway(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> Iterator[RunningGateway]:
    """Providers whose every request carries a fault (`x-simulate`), one model each: for
    translated paths, where a body's `simulate` field does not survive translation."""
    url = upstream.base_url
    faults = {
        "gpt-broken": ("openai-compatible", f"{url}/local/v1", '{"error_after": 3}'),
        "gpt-limited": (
            "openai-compatible",
            f"{url}/local/v1",
            '{"status": 429, "retry_after": 7}',
        ),
        "gpt-cut": ("openai-compatible", f"{url}/local/v1", '{"cut_after": 2}'),
        "claude-broken": ("anthropic", url, '{"error_after": 3}'),
        "claude-cut": ("anthropic", url, '{"cut_after": 2}'),
        "claude-overloaded": ("anthropic", url, '{"status": 529}'),
    }
    providers: dict[str, Any] = {
        model: {
            "type": kind,
            "base_url": base,
            "api_key": UPSTREAM_KEY,
            "headers": {"x-simulate": fault},
            "models": [model],
            "catalog_models": False,
        }
        for model, (kind, base, fault) in faults.items()
    }
    settings = upstream_settings(url, providers=providers, models={}, aliases={})
    running = start_gateway(background, settings)
    yield running
    running.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return gateway.client()


POSTGRES_ADMIN_URL = os.environ.get(
    "CROSSWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CROSSWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's Postgres for this test session, dropped after."""
    import asyncpg

    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"crossway_test_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(
            host=admin.host,
            port=admin.port or 5432,
            user=admin.username,
            password=admin.password,
            database=admin.database,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield admin.set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


STORES = ["sqlite+memory", "postgres+redis"]


@pytest.fixture(scope="session", params=STORES)
def keyed_gateway(
    request: pytest.FixtureRequest, background: BackgroundLoop, upstream: SimulatedUpstream
) -> Iterator[RunningGateway]:
    """The gateway over each store and limiter backend: SQLite with in-process limits, and
    Postgres with Redis limits (the real servers on this machine)."""
    overrides: dict[str, Any] = {"key_refresh_seconds": 0.5}
    if request.param == "postgres+redis":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
        overrides["redis_url"] = REDIS_URL
        overrides["redis_prefix"] = redis_prefix = f"cwtest-{secrets.token_hex(4)}"
    running = start_gateway(background, upstream_settings(upstream.base_url, **overrides))
    running.backend = request.param
    yield running
    running.stop()
    if request.param == "postgres+redis":
        asyncio.run(_forget_redis_keys(redis_prefix))


async def _forget_redis_keys(prefix: str) -> None:
    """Tests leave nothing behind in the machine's Redis."""
    from crossway.limits.resp import RespClient

    client = RespClient(REDIS_URL)
    try:
        keys = await client.call("KEYS", f"{prefix}:*")
        if keys:
            await client.call("DEL", *keys)
    finally:
        await client.close()
