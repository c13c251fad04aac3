"""Assembling the gateway: settings -> providers, catalog, routes -> the ASGI app."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from crossway.api.access import Limits
from crossway.api.asgi import CrosswayApp
from crossway.api.auth import Authenticator, KeyRing, hash_key
from crossway.api.services import Services
from crossway.catalog import Catalog
from crossway.config import ConfigError, Settings
from crossway.limits import create_limiter
from crossway.limits.base import period_start
from crossway.limits.resp import RespClient
from crossway.providers import PROVIDER_TYPES, Provider
from crossway.providers.fetch import FetchPolicy
from crossway.providers.transport import Transport
from crossway.routing import BreakerPolicy, Health, ModelTable, RetryPolicy, Router
from crossway.routing.shared import SharedBreakers
from crossway.store.engine import create_engine
from crossway.store.keys import KeyStore
from crossway.store.ledger import Ledger
from crossway.store.meta import MetaStore, sqlite_path
from crossway.usage import LogWriter, MemoryWriter, UsageRecorder, UsageWriter

log = logging.getLogger("crossway")

MASTER_KEY_HASH = "master_key_sha256"
MASTER_KEY_PREFIX = "master_key_prefix"


@dataclass(slots=True)
class MasterKey:
    hash: bytes
    source: str  # where it came from, for the start-up banner
    new_key: str | None = None  # set only when generated now: shown once, never stored


def new_master_key() -> str:
    return "sk-cw-" + secrets.token_urlsafe(32)


def master_key(settings: Settings, *, rotate: bool = False) -> MasterKey:
    """From the settings, else the hash stored in the state file, else a new one."""
    if settings.master_key is not None and not rotate:
        return MasterKey(
            hash_key(settings.master_key.get_secret_value()),
            "the master_key setting (config or CROSSWAY_MASTER_KEY)",
        )
    path = sqlite_path(settings.database_url)
    if path is None:
        raise ConfigError(
            settings.source,
            [("master_key", "required when database_url is not SQLite (set CROSSWAY_MASTER_KEY)")],
        )
    store = MetaStore(path)
    stored = store.get(MASTER_KEY_HASH)
    if stored is not None and not rotate:
        prefix = (store.get(MASTER_KEY_PREFIX) or b"").decode()
        return MasterKey(stored, f"stored in {path} (key starting {prefix}...)")
    key = new_master_key()
    store.set(MASTER_KEY_HASH, hash_key(key))
    store.set(MASTER_KEY_PREFIX, key[:10].encode())
    return MasterKey(hash_key(key), f"generated now and stored (hashed) in {path}", key)


def build_services(
    settings: Settings,
    master: MasterKey,
    writers: list[UsageWriter] | None = None,
    catalog: Catalog | None = None,
) -> Services:
    """Everything the app needs; nothing connects until the app starts."""
    catalog = catalog or Catalog.load()
    providers: dict[str, Provider] = {
        name: PROVIDER_TYPES[cfg.type](name, cfg) for name, cfg in settings.providers.items()
    }
    transports = {name: Transport(p) for name, p in providers.items()}
    table = ModelTable.build(settings, catalog, providers, transports)
    routing = settings.routing
    health = Health(
        BreakerPolicy(
            failure_threshold=routing.failure_threshold,
            failure_rate=routing.failure_rate,
            min_requests=routing.min_requests,
            window_seconds=routing.window_seconds,
            cooldown_seconds=routing.cooldown_seconds,
            max_cooldown_seconds=routing.max_cooldown_seconds,
        )
    )
    router = Router(
        table, PROVIDER_TYPES, providers, health, routing.strategy, routing.fallbacks_for
    )
    shared = None
    if settings.redis_url:  # every gateway on this Redis shares opened breakers
        deployments = [d for group in table.deployments.values() for d in group]
        shared = SharedBreakers(
            health, RespClient(settings.redis_url), settings.redis_prefix, deployments
        )
    engine = create_engine(settings.database_url)
    key_store = KeyStore(engine)
    ledger = Ledger(engine)
    keys = KeyRing(key_store, settings.key_refresh_seconds)
    if writers is None:
        writers = [LogWriter()] if settings.log_requests else []
    return Services(
        settings=settings,
        catalog=catalog,
        transports=transports,
        table=table,
        router=router,
        health=health,
        shared_breakers=shared,
        fetch_policy=FetchPolicy(
            max_bytes=settings.media_fetch.max_bytes,
            timeout=settings.media_fetch.timeout,
            allow_private=settings.media_fetch.allow_private,
            private_hosts=tuple(settings.media_fetch.private_hosts),
        ),
        retry=RetryPolicy(
            retries=routing.retries,
            backoff_initial=routing.backoff_initial,
            backoff_max=routing.backoff_max,
            jitter=routing.jitter,
            max_retry_after=routing.max_retry_after,
        ),
        usage=UsageRecorder(
            [ledger, *writers] if settings.usage_ledger else writers,
            flush_interval=settings.usage_flush_seconds,
        ),
        auth=Authenticator(master.hash, keys),
        engine=engine,
        key_store=key_store,
        keys=keys,
        ledger=ledger,
        limits=Limits(create_limiter(settings.redis_url, settings.redis_prefix)),
    )


async def _seed_budgets(services: Services) -> None:
    """Budget counters start from the ledger, so a restart does not forgive spending."""
    now_ms = int(time.time() * 1000)
    ledger = services.ledger
    daily = await ledger.spend_since(period_start(now_ms, "daily"))
    monthly = await ledger.spend_since(period_start(now_ms, "monthly"))
    total = {k.id: k.spend_total for k in await services.key_store.list() if k.spend_total}
    await services.limits.limiter.seed(daily, monthly, total, now_ms)


async def _keep_budgets_seeded(services: Services, every: float = 60.0) -> None:
    """Seed now and every minute: counters lost with a Redis restart come back from the
    ledger (seeding only fills counters that are missing or lower)."""
    while True:
        try:
            await _seed_budgets(services)
        except Exception:
            log.warning("could not seed budget counters from the ledger", exc_info=True)
        await asyncio.sleep(every)


def create_app(services: Services) -> CrosswayApp:
    background: list[asyncio.Task[None]] = []

    async def startup() -> None:
        for transport in services.transports.values():
            await transport.open()
        await services.keys.start()
        try:
            await _seed_budgets(services)
        except Exception:  # Redis or the database is down: serve what can be served
            log.warning("could not seed budget counters at start", exc_info=True)
        background.append(asyncio.get_running_loop().create_task(_keep_budgets_seeded(services)))
        await services.usage.start()
        if services.shared_breakers is not None:
            await services.shared_breakers.start()

    async def stop_shared_breakers() -> None:
        if services.shared_breakers is not None:
            await services.shared_breakers.stop()

    async def stop_background() -> None:
        for task in background:
            task.cancel()
        # waited for: one cancelled inside a database call must let go of its connection
        # before the engine is disposed below, or the process cannot end
        await asyncio.gather(*background, return_exceptions=True)

    async def close_transports() -> None:
        for transport in services.transports.values():
            await transport.close()

    # separate steps: one that fails (Redis already gone, say) does not skip the others
    shutdown = [
        stop_background,
        stop_shared_breakers,
        services.limits.drain,
        services.usage.stop,  # writes every pending usage event
        services.keys.stop,
        services.limits.limiter.close,
        close_transports,
        services.ledger.close,
        services.engine.dispose,
    ]

    return CrosswayApp(services, on_startup=[startup], on_shutdown=shutdown)


__all__ = ["MasterKey", "MemoryWriter", "build_services", "create_app", "master_key"]
