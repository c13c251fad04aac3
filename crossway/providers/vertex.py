"""Google's Vertex AI, Gemini's enterprise home: the same wire format, other paths and auth.

Callers pin it as `google` (its family) and it serves the catalog's Google models. Auth is
a service account's OAuth token (`credentials_file`, else GOOGLE_APPLICATION_CREDENTIALS),
fetched through google-auth and refreshed a minute before it expires, off the event loop;
or an API key (Vertex's API-key mode), which uses the project-less publisher paths.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossway.errors import UpstreamError
from crossway.providers import register
from crossway.providers.base import Provider
from crossway.providers.google import ACTIONS

if TYPE_CHECKING:
    from crossway.config import ProviderConfig

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_EARLY = dt.timedelta(seconds=60)  # refresh this long before the token expires


@register
class Vertex(Provider):
    vendor = "vertex"
    family = "google"
    dialect = "gemini"
    requires_api_key = False
    request_id_header = "x-goog-request-id"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        location = config.location or "global"
        if config.base_url is None:
            host = "aiplatform.googleapis.com"
            if location != "global":
                host = f"{location}-{host}"
            config = config.model_copy(update={"base_url": f"https://{host}"})
        super().__init__(name, config)
        version = config.api_version or "v1"
        if config.project and not self.api_key:
            self.prefix = (
                f"{self.base_url}/{version}/projects/{config.project}/locations/{location}"
            )
        else:
            self.prefix = f"{self.base_url}/{version}"
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    @property
    def dynamic_auth(self) -> bool:  # type: ignore[override]
        return self.api_key is None

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def url(self, operation: str, upstream_model: str) -> str:
        model = upstream_model.removeprefix("models/")
        return f"{self.prefix}/publishers/google/models/{model}{ACTIONS[operation]}"

    async def auth_lines(self) -> bytes:
        creds = self._credentials
        if creds is None or not _fresh(creds):
            async with self._lock:
                creds = self._credentials
                if creds is None or not _fresh(creds):
                    creds = await asyncio.to_thread(self._refreshed)
                    self._credentials = creds
        return b"authorization: Bearer " + str(creds.token).encode("latin-1") + b"\r\n"

    def _refreshed(self) -> Any:
        """Load (once) and refresh the service account's token; blocking, so in a thread."""
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        try:
            creds = self._credentials
            if creds is None:
                path = self.config.credentials_file or os.environ.get(
                    "GOOGLE_APPLICATION_CREDENTIALS"
                )
                if not path:
                    raise ValueError("no credentials_file and no GOOGLE_APPLICATION_CREDENTIALS")
                load = service_account.Credentials.from_service_account_file
                creds = load(path, scopes=[SCOPE])  # type: ignore[no-untyped-call]
            creds.refresh(Request())
            return creds
        except Exception as exc:
            raise UpstreamError(
                f"could not get a Vertex AI access token for provider {self.name}: "
                f"{type(exc).__name__}: {self.redact(str(exc))[:200]}",
                vendor=self.vendor,
                status=503,
                kind="upstream_auth_error",
            ) from None

    @classmethod
    def check_config(cls, config: ProviderConfig) -> list[tuple[str, str]]:
        problems = super().check_config(config)
        if config.api_key is None:
            if not config.project:
                problems.append(("project", "required for type 'vertex' without an api_key"))
            path = config.credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            if not path:
                problems.append(
                    (
                        "credentials_file",
                        "a service-account key file (or set "
                        "GOOGLE_APPLICATION_CREDENTIALS), or an api_key",
                    )
                )
            elif not Path(path).is_file():
                problems.append(("credentials_file", f"no such file: {path}"))
        return problems

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> dict[str, Any] | None:
        project = environ.get("GOOGLE_CLOUD_PROJECT")
        credentials = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not (project and credentials):
            return None
        return {
            "type": cls.vendor,
            "project": project,
            "location": environ.get("GOOGLE_CLOUD_LOCATION", "global"),
            "credentials_file": credentials,
        }


def _fresh(creds: Any) -> bool:
    expiry = getattr(creds, "expiry", None)
    if not getattr(creds, "token", None):
        return False
    if expiry is None:
        return True
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # google-auth keeps naive UTC
    return bool(expiry - _EARLY > now)
