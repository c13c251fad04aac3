"""Everything a front door needs, assembled once at start-up by `crossway.app`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from crossway.api.access import Limits
from crossway.api.auth import Authenticator, KeyRing
from crossway.catalog import Catalog
from crossway.config import Settings
from crossway.providers.fetch import FetchPolicy
from crossway.providers.transport import Transport
from crossway.routing import Health, ModelTable, RetryPolicy, Router
from crossway.routing.shared import SharedBreakers
from crossway.store.keys import KeyStore
from crossway.store.ledger import Ledger
from crossway.usage import UsageRecorder


@dataclass(slots=True)
class Services:
    settings: Settings
    catalog: Catalog
    transports: dict[str, Transport]
    table: ModelTable
    router: Router
    health: Health
    retry: RetryPolicy
    shared_breakers: SharedBreakers | None
    fetch_policy: FetchPolicy  # for media given by URL to upstreams that need the bytes
    usage: UsageRecorder
    auth: Authenticator
    engine: AsyncEngine
    key_store: KeyStore
    keys: KeyRing
    ledger: Ledger
    limits: Limits
