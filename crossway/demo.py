"""`crossway serve --demo`: every vendor wired to the simulated upstream, no keys needed."""

from __future__ import annotations

import os
import socket
from typing import Any

from crossway.config import Settings
from crossway.providers import PROVIDER_TYPES

DEMO_MASTER_KEY = "sk-crossway-demo"
DEMO_LOCAL_MODEL = "llama-3.1-8b-instruct"


def demo_socket() -> socket.socket:
    """A listening socket for the simulated upstream, bound before the settings are made."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def demo_settings(upstream_url: str, base: Settings) -> Settings:
    providers: dict[str, Any] = {}
    for vendor in PROVIDER_TYPES:
        if vendor == "openai-compatible":
            continue
        providers[vendor] = {
            "type": vendor,
            "api_key": f"demo-{vendor}",
            "base_url": f"{upstream_url}/{vendor}/v1",
            "catalog_models": True,
        }
    providers["local"] = {
        "type": "openai-compatible",
        "base_url": f"{upstream_url}/local/v1",
        "models": [DEMO_LOCAL_MODEL],
    }
    data = base.model_dump(exclude={"source"})
    data["providers"] = providers
    data["models"] = {}
    key = os.environ.get("CROSSWAY_MASTER_KEY") or DEMO_MASTER_KEY
    data["master_key"] = key
    settings = Settings.model_validate(data)
    settings.source = "demo"
    return settings
