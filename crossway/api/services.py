"""Everything a front door needs, assembled once at start-up by `crossway.app`."""

from __future__ import annotations

from dataclasses import dataclass

from crossway.api.auth import Authenticator
from crossway.catalog import Catalog
from crossway.config import Settings
from crossway.providers.transport import Transport
from crossway.routing import Health, ModelTable, Router
from crossway.usage import UsageRecorder


@dataclass(slots=True)
class Services:
    settings: Settings
    catalog: Catalog
    transports: dict[str, Transport]
    table: ModelTable
    router: Router
    health: Health
    usage: UsageRecorder
    auth: Authenticator
