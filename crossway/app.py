"""Assembling the gateway: settings -> providers, catalog, routes -> the ASGI app."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from crossway.api.asgi import CrosswayApp
from crossway.api.auth import Authenticator, hash_key
from crossway.api.services import Services
from crossway.catalog import Catalog
from crossway.config import ConfigError, Settings
from crossway.providers import PROVIDER_TYPES, Provider
from crossway.providers.transport import Transport
from crossway.routing import Health, ModelTable, Router
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
    catalog = catalog or Catalog.load()
    providers: dict[str, Provider] = {
        name: PROVIDER_TYPES[cfg.type](name, cfg) for name, cfg in settings.providers.items()
    }
    transports = {name: Transport(p) for name, p in providers.items()}
    table = ModelTable.build(settings, catalog, providers, transports)
    router = Router(table, PROVIDER_TYPES, providers)
    if writers is None:
        writers = [LogWriter()] if settings.log_requests else []
    return Services(
        settings=settings,
        catalog=catalog,
        transports=transports,
        table=table,
        router=router,
        health=Health(settings.routing.failure_threshold, settings.routing.cooldown_seconds),
        usage=UsageRecorder(writers),
        auth=Authenticator(master.hash),
    )


def create_app(services: Services) -> CrosswayApp:
    async def startup() -> None:
        for transport in services.transports.values():
            await transport.open()
        await services.usage.start()

    async def shutdown() -> None:
        await services.usage.stop()  # flushes every pending usage event
        for transport in services.transports.values():
            await transport.close()

    return CrosswayApp(services, on_startup=[startup], on_shutdown=[shutdown])


__all__ = ["MasterKey", "MemoryWriter", "build_services", "create_app", "master_key"]
